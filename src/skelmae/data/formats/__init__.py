"""Readers of the raw dataset formats; ``skelmae.data.prepare`` drives them."""
