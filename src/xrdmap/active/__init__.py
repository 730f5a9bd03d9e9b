"""Active learning: uncertainty scores, selection strategies, the relabel query over a
store and the relabel queue on disk."""
