"""Hypertab's wire protocol: messages, ops, codecs, limits, error and close codes.

Pure: no I/O, no asyncio. Both the server and the client SDK build on it.
"""
