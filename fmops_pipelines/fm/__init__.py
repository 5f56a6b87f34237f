"""Foundation-model layer: backends behind one interface, a persistent cache, prompt exploration."""
