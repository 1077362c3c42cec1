"""Data: reading text files, character vocabularies, splits and batchers."""
