"""The data behind :data:`jobtoken.broker.connectors.templates.TEMPLATES`.

One function, :func:`catalog`, builds every template; it takes the template class as an
argument so that this module imports nothing from ``provider_templates`` at run time.
Each fact carries a comment with the documentation page it comes from; a fact we could
not read on the provider's own pages says so (docs/connectors-templates.md lists them).
Our scope names are ``resource:read`` / ``resource:write``; ``upstream_scopes`` are the
provider's own names, asked for at connect time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobtoken.broker.connectors.model import Route

if TYPE_CHECKING:
    from jobtoken.broker.connectors.templates import ProviderTemplate

__all__ = ["catalog"]

# HubSpot
H_OAUTH = "https://developers.hubspot.com/docs/api-reference/auth-oauth-v3/guide"
H_MIGRATE = (
    "https://developers.hubspot.com/docs/api-reference/legacy/authentication/"
    "oauth-tokens/v1/migration-guide"
)
H_GRANT = (
    "https://developers.hubspot.com/docs/api-reference/2026-03/authentication/"
    "oauth-tokens/refresh-oauth-token"
)
H_CONTACTS = "https://developers.hubspot.com/docs/api-reference/latest/crm/objects/contacts/guide"
H_CONTACTS_V3 = "https://developers.hubspot.com/docs/api/CRM/Contacts"
H_SCOPES = (
    "https://developers.hubspot.com/docs/apps/developer-platform/build-apps/authentication/scopes"
)
# Slack
S_INSTALL = "https://docs.slack.dev/authentication/installing-with-oauth"
S_ACCESS = "https://docs.slack.dev/reference/methods/oauth.v2.access"
S_ROTATION = "https://docs.slack.dev/authentication/using-token-rotation"
S_ROTATOR = (
    "https://slack.dev/python-slack-sdk/api-docs/slack_sdk/oauth/token_rotation/rotator.html"
)
S_POST = "https://api.slack.com/methods/chat.postMessage"
S_CHAT_WRITE = "https://docs.slack.dev/reference/scopes/chat.write"
S_SENDING = "https://api.slack.com/messaging/sending"
# Notion
N_AUTHZ = "https://developers.notion.com/reference/authorization"
N_CREATE = "https://developers.notion.com/reference/create-a-token"
N_REFRESH = "https://developers.notion.com/reference/refresh-a-token"
N_REVOKE = "https://developers.notion.com/reference/revoke-token"
N_VERSIONS = "https://developers.notion.com/reference/versioning"
N_AUTHN = "https://developers.notion.com/reference/authentication"
# Salesforce
SF_ENDPOINTS = (
    "https://developer.salesforce.com/docs/atlas.en-us.222.0.api_rest.meta/api/"
    "intro_understanding_oauth_endpoints.htm"
)
SF_REFRESH = (
    "https://developer.salesforce.com/docs/atlas.en-us.222.0.api_rest.meta/api/"
    "intro_understanding_refresh_token_oauth.htm"
)
SF_REVOKE = (
    "https://developer.salesforce.com/docs/atlas.en-us.mobile_sdk.meta/mobile_sdk/"
    "oauth_revoking_tokens.htm"
)
SF_SCOPES = "https://developer.salesforce.com/docs/platform/mobile-sdk/guide/oauth-scope-parameter-values.html"
SF_ROWS = (
    "https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/"
    "resources_sobject_retrieve.htm"
)
SF_QUICKSTART = (
    "https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/quickstart_code.htm"
)
# Google
G_WEB = "https://developers.google.com/identity/protocols/oauth2/web-server"
G_OIDC = "https://developers.google.com/identity/protocols/oauth2/openid-connect"
G_DRIVE = "https://developers.google.com/workspace/drive/api/v3/reference/files/list"
G_EVENTS = "https://developers.google.com/workspace/calendar/api/v3/reference/events/list"
G_SCOPES_DRIVE = "https://googleapis.dev/ruby/google-apis-drive_v3/v0.52.0/Google/Apis/DriveV3.html"
G_SCOPES_CAL = (
    "https://googleapis.dev/dotnet/Google.Apis.Calendar.v3/1.55.0.2500/api/"
    "Google.Apis.Calendar.v3.CalendarService.ScopeConstants.html"
)
# GitHub
GH_INSTALL = (
    "https://docs.github.com/apps/creating-github-apps/authenticating-with-a-github-app/"
    "generating-an-installation-access-token-for-a-github-app"
)
GH_CONTENTS = "https://docs.github.com/en/rest/repos/contents"
GH_ISSUES = "https://docs.github.com/en/rest/issues/issues"
GH_PULLS = "https://docs.github.com/en/rest/pulls/pulls"
GH_PERMISSIONS = (
    "https://docs.github.com/en/rest/authentication/permissions-required-for-github-apps"
)

_HUBSPOT_READ_QUERY = (
    *("limit", "after", "properties", "propertiesWithHistory", "associations"),
    *("archived", "idProperty"),
)


def _hubspot_routes() -> tuple[Route, ...]:
    # H_CONTACTS: the latest contacts API lives under /crm/objects/2026-03/contacts;
    # H_CONTACTS_V3: the v3 paths under /crm/v3/objects/contacts. Search and batch read
    # are POSTs that only read, so they come before the catch-all write route.
    routes: list[Route] = []
    for base in ("/crm/objects/2026-03/contacts", "/crm/v3/objects/contacts"):
        routes += [
            Route("POST", f"{base}/search", "crm.objects.contacts.read"),
            Route("POST", f"{base}/batch/read", "crm.objects.contacts.read"),
            Route("GET", f"{base}/**", "crm.objects.contacts.read", query=_HUBSPOT_READ_QUERY),
            Route("POST", f"{base}/**", "crm.objects.contacts.write"),
            Route("PATCH", f"{base}/**", "crm.objects.contacts.write"),
            Route("DELETE", f"{base}/**", "crm.objects.contacts.write"),
        ]
    return tuple(routes)


def _hubspot(make: type[ProviderTemplate]) -> ProviderTemplate:
    return make(
        name="hubspot",
        credential="oauth2-refresh",
        # H_OAUTH: users install the app through https://app.hubspot.com/oauth/authorize
        authorize_url="https://app.hubspot.com/oauth/authorize",
        # H_MIGRATE: the v1 OAuth endpoints (/oauth/v1/token, ...) are deprecated on
        # 2027-02-16; code and refresh grants move to /oauth/2026-03/token, whose
        # response carries access_token and expires_in. H_GRANT gives the full URL.
        token_url="https://api.hubapi.com/oauth/2026-03/token",  # noqa: S106 - public URL
        # Not found: an RFC 7009 endpoint for the 2026-03 API. The v1 refresh-token
        # DELETE is deprecated (H_MIGRATE) and is not RFC 7009-style, so none.
        revoke_url="",
        scope_separator=" ",
        # H_GRANT / H_OAUTH: client_id and client_secret go in the form-encoded body
        client_auth="client_secret_post",
        base_url="https://api.hubapi.com",
        base_url_field="",
        access_token_path=("access_token",),
        authorize_params={},
        # H_SCOPES explains required scopes; these two names we could read only on
        # third-party pages, not on a HubSpot one (unconfirmed)
        upstream_scopes=("crm.objects.contacts.read", "crm.objects.contacts.write"),
        headers={},
        routes=_hubspot_routes(),
        docs=(H_OAUTH, H_MIGRATE, H_GRANT, H_CONTACTS, H_CONTACTS_V3, H_SCOPES),
    )


def _slack(make: type[ProviderTemplate]) -> ProviderTemplate:
    return make(
        name="slack",
        credential="oauth2-refresh",
        # S_INSTALL: the install link goes to slack.com/oauth/v2/authorize
        authorize_url="https://slack.com/oauth/v2/authorize",
        # S_ACCESS: POST https://slack.com/api/oauth.v2.access exchanges the code and,
        # with grant_type=refresh_token, a refresh token (S_ROTATION: with rotation on,
        # access tokens expire after 12 hours and every refresh returns a new refresh
        # token, the old one being revoked).
        token_url="https://slack.com/api/oauth.v2.access",  # noqa: S106 - public URL
        # auth.revoke revokes the token that calls it: not RFC 7009-style, so none
        revoke_url="",
        # Slack scope lists are comma-separated (seen in Slack's install URLs; the
        # sentence saying so was not in what we could read of S_INSTALL)
        scope_separator=",",
        # S_ACCESS: "avoid sending client_id and client_secret as parameters ... supply
        # them using the HTTP Basic authentication scheme"
        client_auth="client_secret_basic",
        base_url="https://slack.com",
        base_url_field="",
        # S_INSTALL / S_ACCESS: oauth.v2.access puts the BOT token first, at the top
        # level; a user token (user_scope) is nested under authed_user.access_token.
        # S_ROTATOR: a refresh response has access_token, refresh_token and expires_in at
        # the top level, with token_type "bot" or "user" (not "Bearer").
        access_token_path=("access_token",),
        authorize_params={},
        upstream_scopes=("chat:write", "channels:read"),
        headers={},
        routes=(
            # S_POST: POST https://slack.com/api/chat.postMessage; S_CHAT_WRITE: chat:write
            # covers chat.postMessage and chat.update
            Route("POST", "/api/chat.postMessage", "chat:write"),
            Route("POST", "/api/chat.update", "chat:write"),
            # S_SENDING: channels:read lets the app list the public channels (the query
            # parameter names come from Slack SDK types: unconfirmed)
            Route(
                "GET",
                "/api/conversations.list",
                "channels:read",
                query=("cursor", "exclude_archived", "limit", "team_id", "types"),
            ),
            Route("GET", "/api/conversations.info", "channels:read", query=("channel",)),
        ),
        docs=(S_INSTALL, S_ACCESS, S_ROTATION, S_ROTATOR, S_POST, S_CHAT_WRITE, S_SENDING),
    )


def _notion(make: type[ProviderTemplate]) -> ProviderTemplate:
    paging = ("page_size", "start_cursor")
    return make(
        name="notion",
        credential="oauth2-refresh",
        # Public integrations use OAuth 2.0 (N_AUTHZ). The authorize URL is the one in
        # Notion's JavaScript SDK guide; not read on a developers.notion.com page.
        authorize_url="https://api.notion.com/v1/oauth/authorize",
        # N_CREATE: POST /v1/oauth/token; N_REFRESH: refresh_token grant at the same
        # endpoint, returning a new access token AND a new refresh token (rotation)
        token_url="https://api.notion.com/v1/oauth/token",  # noqa: S106 - public URL
        # N_REVOKE: POST /v1/oauth/revoke with {"token": ...}, HTTP Basic client auth
        revoke_url="https://api.notion.com/v1/oauth/revoke",
        scope_separator=" ",
        # N_REFRESH / N_REVOKE: "Basic authentication header ... username:password"
        client_auth="client_secret_basic",
        base_url="https://api.notion.com",
        base_url_field="",
        access_token_path=("access_token",),
        # owner=user: in every Notion authorize URL we saw (integration code), not read
        # on a Notion page
        authorize_params={"owner": "user"},
        # Notion has no OAuth scopes: capabilities are set on the integration and the
        # user picks the pages to share during authorization (N_AUTHZ)
        upstream_scopes=(),
        # N_VERSIONS: the Notion-Version header is required on every request; the
        # latest version it names is 2026-03-11. N_AUTHN: Bearer token on API calls.
        headers={"Notion-Version": "2026-03-11"},
        # the token and refresh requests take a JSON body (the create-a-token page above)
        token_body="json",  # noqa: S106 (a body format)
        routes=(
            Route("POST", "/v1/search", "search:read"),
            Route("GET", "/v1/pages/**", "pages:read", query=("filter_properties", *paging)),
            Route("POST", "/v1/pages", "pages:write"),
            Route("PATCH", "/v1/pages/*", "pages:write"),
            Route("GET", "/v1/blocks/**", "pages:read", query=paging),
            Route("PATCH", "/v1/blocks/**", "pages:write"),
            Route("DELETE", "/v1/blocks/*", "pages:write"),
            # databases (before 2025-09-03) and data sources (from 2025-09-03)
            Route("GET", "/v1/databases/*", "databases:read"),
            Route("POST", "/v1/databases/*/query", "databases:read"),
            Route("GET", "/v1/data_sources/*", "databases:read"),
            Route(
                "POST", "/v1/data_sources/*/query", "databases:read", query=("filter_properties",)
            ),
            Route("POST", "/v1/databases", "databases:write"),
            Route("PATCH", "/v1/databases/*", "databases:write"),
            Route("POST", "/v1/data_sources", "databases:write"),
            Route("PATCH", "/v1/data_sources/*", "databases:write"),
        ),
        docs=(N_AUTHZ, N_CREATE, N_REFRESH, N_REVOKE, N_VERSIONS, N_AUTHN),
    )


def _salesforce(make: type[ProviderTemplate]) -> ProviderTemplate:
    data = "/services/data/*"  # SF_QUICKSTART: /services/data/vXX.X/ (the version)
    return make(
        name="salesforce",
        credential="oauth2-refresh",
        # SF_ENDPOINTS: the three primary OAuth endpoints on login.salesforce.com (a
        # sandbox uses test.salesforce.com, a My Domain its own host: override them)
        authorize_url="https://login.salesforce.com/services/oauth2/authorize",
        token_url="https://login.salesforce.com/services/oauth2/token",  # noqa: S106 - public URL
        # SF_REVOKE: form-encoded POST token=...; a refresh token revokes its access tokens
        revoke_url="https://login.salesforce.com/services/oauth2/revoke",
        scope_separator=" ",
        # SF_REFRESH: client_id/client_secret as body parameters (HTTP Basic also accepted)
        client_auth="client_secret_post",
        # SF_REFRESH: the token response's instance_url is the instance API calls go to
        base_url="",
        base_url_field="instance_url",
        access_token_path=("access_token",),
        authorize_params={},
        # SF_SCOPES: "for most apps, refresh_token, web, and api are sufficient"
        upstream_scopes=("api", "refresh_token"),
        headers={},
        routes=(
            # SOQL query resource (?q=) and its next-page locator: paths seen in
            # Salesforce examples, not on a page we could read (unconfirmed)
            Route("GET", f"{data}/query", "sobjects:read", query=("q",)),
            Route("GET", f"{data}/query/*", "sobjects:read"),
            # SF_ROWS: GET reads, PATCH updates, DELETE deletes sObject rows
            Route("GET", f"{data}/sobjects/**", "sobjects:read", query=("fields",)),
            Route("POST", f"{data}/sobjects/*", "sobjects:write"),
            Route("PATCH", f"{data}/sobjects/**", "sobjects:write"),
            Route("DELETE", f"{data}/sobjects/**", "sobjects:write"),
        ),
        docs=(SF_ENDPOINTS, SF_REFRESH, SF_REVOKE, SF_SCOPES, SF_ROWS, SF_QUICKSTART),
    )


def _google(make: type[ProviderTemplate]) -> ProviderTemplate:
    drive_list = (
        *("corpora", "driveId", "includeItemsFromAllDrives", "orderBy", "pageSize"),
        *("pageToken", "q", "spaces", "supportsAllDrives", "fields"),
    )
    events = (
        *("timeMin", "timeMax", "q", "maxResults", "pageToken", "singleEvents"),
        *("orderBy", "showDeleted", "updatedMin", "timeZone", "syncToken", "eventTypes"),
    )
    return make(
        name="google",
        credential="oauth2-refresh",
        # G_OIDC: Google's discovery document (accounts.google.com/.well-known/
        # openid-configuration) lists these authorization, token and revocation endpoints
        authorize_url="https://accounts.google.com/o/oauth2/v2/auth",
        token_url="https://oauth2.googleapis.com/token",  # noqa: S106 - public URL
        revoke_url="https://oauth2.googleapis.com/revoke",
        scope_separator=" ",
        # G_WEB: the code exchange sends client_id and client_secret in the POST body
        # (that section was beyond what we could read: unconfirmed)
        client_auth="client_secret_post",
        base_url="https://www.googleapis.com",
        base_url_field="",
        access_token_path=("access_token",),
        # G_WEB: access_type=offline asks for a refresh token; Google returns one only
        # on consent, so prompt=consent makes every connect yield one (G_WEB's summary
        # names refresh tokens; the parameter table itself we could not read)
        authorize_params={"access_type": "offline", "prompt": "consent"},
        # G_SCOPES_DRIVE / G_SCOPES_CAL: Google's client-library scope constants
        upstream_scopes=(
            "https://www.googleapis.com/auth/drive.readonly",
            "https://www.googleapis.com/auth/calendar.readonly",
        ),
        headers={},
        routes=(
            # G_DRIVE: GET https://www.googleapis.com/drive/v3/files and its parameters
            Route("GET", "/drive/v3/files", "drive:read", query=drive_list),
            Route("GET", "/drive/v3/files/*", "drive:read", query=("fields", "alt")),
            Route("GET", "/drive/v3/files/*/export", "drive:read", query=("mimeType",)),
            # G_EVENTS: GET https://www.googleapis.com/calendar/v3/calendars/ID/events
            Route("GET", "/calendar/v3/calendars/*/events", "calendar:read", query=events),
            Route("GET", "/calendar/v3/calendars/*/events/*", "calendar:read"),
            Route(
                "GET",
                "/calendar/v3/users/me/calendarList",
                "calendar:read",
                query=("maxResults", "pageToken"),
            ),
        ),
        docs=(G_WEB, G_OIDC, G_DRIVE, G_EVENTS, G_SCOPES_DRIVE, G_SCOPES_CAL),
    )


def _github_app(make: type[ProviderTemplate]) -> ProviderTemplate:
    repo = "/repos/*/*"
    paging = ("per_page", "page")
    issues = (
        *("milestone", "state", "assignee", "creator", "mentioned", "labels", "sort"),
        *("direction", "since", *paging),
    )
    pulls = ("state", "head", "base", "sort", "direction", *paging)
    return make(
        name="github-app",
        # Not OAuth: the broker signs a JWT with the app's key and asks for an
        # installation token (GH_INSTALL); the routes' scope names are GitHub App
        # permission:level pairs, which the broker turns into the token's permissions.
        credential="github-app",
        authorize_url="",
        token_url="",
        revoke_url="",
        scope_separator=" ",  # unused: not OAuth
        client_auth="client_secret_post",  # unused: not OAuth
        base_url="https://api.github.com",
        base_url_field="",
        # GH_INSTALL: the installation token is the response's "token" field (the page's
        # response example was beyond what we could read: unconfirmed)
        access_token_path=("token",),
        authorize_params={},
        upstream_scopes=(),
        # the REST API version every call names (https://docs.github.com/en/rest/about-the-rest-api/api-versions)
        headers={"X-GitHub-Api-Version": "2022-11-28"},
        routes=(
            # GH_CONTENTS: get (GET), create or update (PUT) and delete (DELETE) a file
            Route("GET", f"{repo}/contents/**", "contents:read", query=("ref",)),
            Route("PUT", f"{repo}/contents/**", "contents:write"),
            Route("DELETE", f"{repo}/contents/**", "contents:write"),
            # GH_ISSUES: list/get issues and comments (read), create/update (write)
            Route("GET", f"{repo}/issues/**", "issues:read", query=issues),
            Route("POST", f"{repo}/issues/**", "issues:write"),
            Route("PATCH", f"{repo}/issues/**", "issues:write"),
            # GH_PULLS (page not read: unconfirmed): list/get (read), create/update (write)
            Route("GET", f"{repo}/pulls/**", "pull_requests:read", query=pulls),
            Route("POST", f"{repo}/pulls/**", "pull_requests:write"),
            Route("PATCH", f"{repo}/pulls/**", "pull_requests:write"),
            # GH_PERMISSIONS: GET /repos/{owner}/{repo} needs only metadata (read); read on
            # the older /rest/overview/permissions-required-for-github-apps page
            Route("GET", repo, "metadata:read"),
        ),
        docs=(GH_INSTALL, GH_CONTENTS, GH_ISSUES, GH_PULLS, GH_PERMISSIONS),
    )


def catalog(make: type[ProviderTemplate]) -> tuple[ProviderTemplate, ...]:
    """Every template, built with `make` (the ProviderTemplate class)."""
    builders = (_hubspot, _slack, _notion, _salesforce, _google, _github_app)
    return tuple(build(make) for build in builders)
