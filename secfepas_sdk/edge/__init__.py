"""Edge side: the TLS server that holds the secret model weights and runs the
server half of secure inference for many cameras."""
