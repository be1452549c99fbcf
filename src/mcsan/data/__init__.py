"""Files and text: dataset layouts, validation, caption semantics, vocabularies, batches.

Nothing here builds a model; everything above it reads data only through this package.
"""
