"""Hub model cards for fine-tuned DLFA runs: `card.write_model_card` fills `dlfa_model_card.md`."""
