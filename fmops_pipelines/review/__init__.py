"""The review loop: a queue of rows worth a person's label (queue), the append-only store of the labels people
gave (store), the checks every annotation passes before it is stored (annotations), and the two ways rows reach a
person and come back: Label Studio (label_studio) or a CSV file (rounds)."""
