"""Model families: a merge-aware ViT, the architectures registry, and checkpoint loading."""
