"""Reweight and rewrite: optimal training mixtures, a skill-composition testbed, rephrasing."""
