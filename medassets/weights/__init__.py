"""Where a model's weights are, and which revision they are: local folders, the local
Hugging Face cache and the embedded model. Nothing here loads a model or downloads."""
