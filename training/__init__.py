"""Training (``emojinet prepare | prescale | train | train-gan | evaluate | bench``): data sets,
the classifier and EmojiGAN trainers, evaluation and quality scoring, built on :mod:`emojinet`."""
