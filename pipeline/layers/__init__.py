"""Keras layers some methods need beyond larq's (each module registers its layers)."""
