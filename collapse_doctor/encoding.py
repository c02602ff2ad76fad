"""How a grid is encoded, shared by the data that writes it, the model that reads it and the loss that
scores it (docs/rlan-reference.md 2.1): colours are 0-9, padding cells are PAD, and query cells that
must not count in the loss are IGNORE_INDEX."""

PAD = 10  # grid value of padding cells in every model input
IGNORE_INDEX = -100  # query targets, when data.ignore_padding_in_loss (torch's cross-entropy default)
