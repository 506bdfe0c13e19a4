"""The HTTP service (``emojinet serve``): a FastAPI app over one EmojiNet predictor.

Only this package knows HTTP. It never imports training code.
"""
