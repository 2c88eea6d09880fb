"""The search agent: the tag protocol, the turn loop, the model backends, chat."""
