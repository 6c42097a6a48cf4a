"""Every call the broker makes to another server, and what it keeps of the answers:
``bounded_http`` (one bounded synchronous request), ``oauth_client`` (a provider's token
and revocation endpoints), ``grants`` (OAuth grants refreshed once for everyone) with
``grant_access`` (what a grant gives, or why not) and ``refresh_request`` (one refresh's
bounded tries at the provider), ``authorization_flow`` (``broker
connect``), ``github_app`` (installation tokens), ``job_tokens`` (a job's own upstream
tokens), ``exchange_side`` (the upstream side of an exchange), ``proxy_client`` (the
proxy's pooled clients), ``github_policy_source`` (policies from a repository's default
branch).
"""
