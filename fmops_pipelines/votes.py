"""The one vote convention shared by FM labelers, labeling functions and label models."""

ABSTAIN = -1  # a labeler's vote on a row it declines to label; real votes are label indices 0..k-1
