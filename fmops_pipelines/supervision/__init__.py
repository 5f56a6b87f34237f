"""Weak supervision: the label matrix from all labelers, and label models that combine their votes."""
