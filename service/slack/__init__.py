"""The Slack app: emoji reactions on photos shared in channels, ``/emojinet``, and a message
shortcut, served by the same app as ``/suggest`` (see :mod:`service.slack.bolt`).

On only when ``EMOJINET_SLACK_SIGNING_SECRET`` and ``EMOJINET_SLACK_BOT_TOKEN`` are both set;
otherwise this package is never imported and ``/slack/events`` does not exist. Needs the
``slack`` extra (``pip install 'emojinet[slack]'``).
"""
