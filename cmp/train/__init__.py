"""Self-supervised CMP training: unlabeled video (DIS flow as teacher) + synthetic scenes."""
