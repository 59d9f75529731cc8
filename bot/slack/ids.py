"""Every Slack identifier the app answers to, defined once.

The renderers put these ids into buttons, `commands.register` binds handlers to them and
`manifest.yml` declares the command and the shortcut; a test holds the three together.
"""

import re

# The shapes of Slack's own ids, defined once for parsing, config checks and mentions.
USER_ID_RE = re.compile(r"[UW][A-Z0-9]{2,30}")
GROUP_ID_RE = re.compile(r"S[A-Z0-9]{2,30}")
CHANNEL_ID_RE = re.compile(r"[A-Z][A-Z0-9]{0,39}")
CONVERSATION_ID_RE = re.compile(r"[CGD][A-Z0-9]{2,39}")
THREAD_TS_RE = re.compile(r"\d{1,12}\.\d{1,9}")

SLASH_COMMAND = "/ngrok"
SHORTCUT_THREAD_SESSIONS = "ngrok_thread_sessions"

# Buttons on session lists and detail views.
ACTION_DETAILS = "ngrok_details"
ACTION_REQUEST = "ngrok_request"  # Restart / Update / Stop on a list or detail view: opens a prompt
ACTION_PAGE = "ngrok_page"  # Older / Newer
ACTION_EXPORT = "ngrok_export"  # Export: the whole matching list as a CSV file
ACTION_SHARE = "ngrok_share"  # Post to channel: a private list or details, shown to everyone

# Buttons on the ephemeral approval prompt.
ACTION_APPROVE = "ngrok_approve"  # self-approval by the requester
ACTION_CANCEL = "ngrok_cancel"
ACTION_ASK_APPROVAL = "ngrok_ask_approval"  # requester asks a second person

# Buttons on a public two-person request.
ACTION_TWO_PERSON_APPROVE = "ngrok_tp_approve"
ACTION_TWO_PERSON_DENY = "ngrok_tp_deny"

# Modals.
VIEW_DECISION_REASON = "ngrok_reason"  # the reason a denier or a withdrawing requester gives

# Buttons on alerts, the App Home and the daily digest.
ACTION_ALERT_AGENTS = "ngrok_alert_agents"  # "List them": the agents of one alert, privately
ACTION_HOME_REFRESH = "ngrok_home_refresh"
ACTION_UPDATE_OUTDATED = "ngrok_update_outdated"  # the outdated agents, to update them

# Events the app subscribes to besides app_mention.
EVENT_APP_HOME_OPENED = "app_home_opened"

# Fleet runs: the preview, the two-person request, and the progress message's controls.
ACTION_RUN_APPROVE = "ngrok_run_approve"
ACTION_RUN_ASK = "ngrok_run_ask"
ACTION_RUN_TP_APPROVE = "ngrok_run_tp_approve"
ACTION_RUN_DENY = "ngrok_run_deny"
ACTION_RUN_PAUSE = "ngrok_run_pause"
ACTION_RUN_RESUME = "ngrok_run_resume"
ACTION_RUN_CANCEL = "ngrok_run_cancel"
# The preview's plan menus (static_select): canary size, batch size, failures tolerated.
ACTION_RUN_CANARY = "ngrok_run_canary"
ACTION_RUN_BATCH = "ngrok_run_batch"
ACTION_RUN_MAX_FAILURES = "ngrok_run_max_failures"
# `jobs`: a link button to a run's progress message. Slack opens the URL and still sends
# the app a block_actions payload, which is acked and ignored.
ACTION_RUN_LINK = "ngrok_run_link"
RUN_ACTIONS = (
    ACTION_RUN_APPROVE,
    ACTION_RUN_ASK,
    ACTION_RUN_TP_APPROVE,
    ACTION_RUN_DENY,
    ACTION_RUN_PAUSE,
    ACTION_RUN_RESUME,
    ACTION_RUN_CANCEL,
    ACTION_RUN_CANARY,
    ACTION_RUN_BATCH,
    ACTION_RUN_MAX_FAILURES,
)

ALL_ACTIONS = (
    ACTION_DETAILS,
    ACTION_REQUEST,
    ACTION_PAGE,
    ACTION_EXPORT,
    ACTION_SHARE,
    ACTION_APPROVE,
    ACTION_CANCEL,
    ACTION_ASK_APPROVAL,
    ACTION_TWO_PERSON_APPROVE,
    ACTION_TWO_PERSON_DENY,
    ACTION_ALERT_AGENTS,
    ACTION_HOME_REFRESH,
    ACTION_UPDATE_OUTDATED,
    ACTION_RUN_LINK,
    *RUN_ACTIONS,
)
