"""What both halves of jobtoken share: the action (inside the job) and the broker.

One definition each, so that the action, the policy and the broker accept exactly
the same names and speak the same protocol:

- `grammar` — connector names, scopes, token ids and durations;
- `oauth_terms` — the RFC 8693 / RFC 7009 / RFC 6749 URNs and error codes;
- `text` — untrusted text made safe to print;
- `strict_json` — JSON that parses one way only;
- `unverified_claims` — reading an ID token's claims without verifying it, for messages.

Standard library only, Python 3.10 syntax: the action imports these modules from
its checkout with the runner's ``python3`` and nothing installed.
"""
