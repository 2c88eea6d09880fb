"""The tiny CPU model: its config and tokenizer, the planted copy circuit, the LM warm-up."""
