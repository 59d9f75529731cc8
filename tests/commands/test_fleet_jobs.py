"""`jobs`: each run with a link button to its progress message (the permalink Slack gives
for it); the click Slack still sends for a link button is acked and nothing else."""

import json

from tests.bot_process import buttons_in, find_button
from tests.e2e_fixtures import ALICE, OPS, texts_of


def start_run(stack) -> str:
    """Approves `restart os=darwin`; the ts of its progress message."""
    preview = stack.ask("restart os=darwin")
    stack.reply(stack.click(find_button(preview, "ngrok_run_approve")))
    return stack.posted(
        "chat.postMessage", predicate=lambda c: '"run_running"' in json.dumps(c.body)
    )[0].response["ts"]


def test_jobs_links_each_run_to_its_progress_message_and_the_click_is_acked_silently(stack):
    progress_ts = start_run(stack)
    jobs = stack.ask("jobs")
    link = find_button(jobs, "ngrok_run_link")
    (asked,) = stack.slack.calls_to("chat.getPermalink")
    assert asked.body == {"channel": OPS, "message_ts": progress_ts}
    assert link["url"] == asked.response["permalink"]
    assert link["url"].endswith(f"/archives/{OPS}/p{progress_ts.replace('.', '')}")
    assert link["text"]["text"] == "Progress" and "style" not in link
    assert "/archives/" not in json.dumps(jobs["blocks"]).replace(link["url"], "")
    # Slack opens the URL and sends the click anyway: an empty 200, no reply, no job.
    before = len(stack.slack.calls())
    url = stack.slack.response_url()
    response = stack.sender.click(link, user=ALICE, channel=OPS, response_url=url)
    assert (response.status_code, response.text) == (200, "")
    assert stack.slack.calls()[before:] == []
    assert "ngrok_run_link" not in stack.bot.stderr()  # nothing logged as unhandled
    # The permalink is kept with the run: the next `jobs` does not ask Slack again.
    assert find_button(stack.ask("jobs"), "ngrok_run_link")["url"] == link["url"]
    assert len(stack.slack.calls_to("chat.getPermalink")) == 1


def test_a_run_slack_gives_no_permalink_for_is_listed_without_a_button(stack):
    start_run(stack)
    stack.slack.fail_next(
        "chat.getPermalink", status=200, error="message_not_found", retry_after=None
    )
    jobs = stack.ask("jobs")
    assert [b for b in buttons_in(jobs) if b["action_id"] == "ngrok_run_link"] == []
    assert "restart of" in texts_of(jobs)
    assert find_button(stack.ask("jobs"), "ngrok_run_link")  # asked again next time
