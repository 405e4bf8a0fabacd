"""Quality stage: score how fit a document's text is for training, and say why."""
