"""Dense video captioning: BMT and the BiModal Hierarchical RL agent (BMHRL); see docs/CAPTIONING.md."""
