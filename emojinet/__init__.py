"""EmojiNet, the library: suggest emojis for photos.

Owns the model (:mod:`~emojinet.model`, :mod:`~emojinet.backbones`, :mod:`~emojinet.zeroshot`),
loading and saving it (:mod:`~emojinet.checkpoint`), inference (:mod:`~emojinet.predictor`,
:mod:`~emojinet.backends`, :mod:`~emojinet.sampling`, the EmojiGAN generator) and the
``emojinet`` command line. It never imports the ``service`` or ``training`` packages; they
build on it and add their commands through the ``emojinet.commands`` entry points.
"""

__version__ = "0.1.0"
