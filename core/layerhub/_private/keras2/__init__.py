"""Keras 2 migration: configs translated, weights placed by identity, the result verified
against what wrote the file, and ``convert`` built on the three."""
