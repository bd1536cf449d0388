"""The review page: a local web server over the pipeline's state (`make review`)."""
