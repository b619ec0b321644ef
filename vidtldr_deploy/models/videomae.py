"""VideoMAE (Hugging Face transformers checkpoints): being written."""
