"""EmojiNet, the library: suggest emojis for photos.

>>> import emojinet
>>> "🐈" in emojinet.suggest(emojinet.sample_photo()).emojis
True

The Python API (:mod:`~emojinet.api`): :func:`suggest`, :func:`distribution`, :func:`load` and
:func:`sample_photo`. Importing the package is cheap; the model loads on first use.

Owns the model (:mod:`~emojinet.model`, :mod:`~emojinet.backbones`, :mod:`~emojinet.zeroshot`),
loading and saving it (:mod:`~emojinet.checkpoint`), inference (:mod:`~emojinet.predictor`,
:mod:`~emojinet.backends`, :mod:`~emojinet.sampling`, the EmojiGAN generator) and the
``emojinet`` command line. It never imports the ``service`` or ``training`` packages; they
build on it and add their commands through the ``emojinet.commands`` entry points.
"""

__version__ = "0.1.0"

from emojinet.api import distribution, load, sample_photo, suggest

__all__ = ["__version__", "distribution", "load", "sample_photo", "suggest"]
