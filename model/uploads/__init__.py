"""Resumable uploads: the state of bytes that arrive over many requests."""
