"""The op engine's pure core: catalog model, op validation, row order keys. No I/O."""
