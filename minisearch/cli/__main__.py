from minisearch.cli.main import main

main()
