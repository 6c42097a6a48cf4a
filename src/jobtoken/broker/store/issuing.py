"""The issuing transaction: a token's row, its audit record, the ID token's single use
and the job check, committed together or not at all (invariant 3: a token is issued only
once its audit record is durable). ``tokens/exchange.py`` calls it at step 7 of an
exchange (docs/architecture.md, "The data path").

Part of :class:`~jobtoken.broker.store.base.SqlStore`; it asks the job-end table, hence
its base class.

Public API: :meth:`IssueQueries.issue_token`.
"""

from __future__ import annotations

from jobtoken.broker.store.job_ends import JobEndQueries
from jobtoken.broker.store.records import (
    TOKEN_COLUMNS,
    AuditBuilder,
    Cursor,
    IssueRefused,
    JobKey,
    JtiClaim,
    TokenRecord,
)

__all__ = ["IssueQueries"]


class IssueQueries(JobEndQueries):
    """``issue_token``."""

    def issue_token(
        self,
        build: AuditBuilder,
        token: TokenRecord,
        *,
        jti: JtiClaim | None = None,
        job: JobKey | None = None,
        upstream: bytes | None = None,
    ) -> int:
        """The issuing transaction: ``token``'s row with its audit record, committed
        together or not at all; the record's ``seq`` once committed. In order:

        1. ``jti``: claim the ID token's single use (``IssueRefused("replayed")`` if it
           was claimed already);
        2. ``job``: the job has not ended (``IssueRefused("job_completed")``), checked
           under the write lock, so a job end recorded meanwhile is seen;
        3. the audit record and ``token``'s row;
        4. ``upstream``: the sealed upstream token the job got with ``token`` (a GitHub
           App installation token), kept for the proxy and for revoking it upstream.

        A refusal commits nothing of the transaction.
        """

        def body(cur: Cursor) -> int:
            if jti is not None:
                cur.execute(
                    self._sql(
                        "INSERT INTO jti_replay (issuer, jti, expires_at) VALUES (?, ?, ?) "
                        "ON CONFLICT (issuer, jti) DO NOTHING"
                    ),
                    (jti.issuer, jti.jti, jti.expires_at),
                )
                if cur.rowcount != 1:
                    raise IssueRefused("replayed")
            if job is not None and self._job_ended_in(cur, job):
                raise IssueRefused("job_completed")
            seq = self._append(cur, build)
            cur.execute(
                self._sql(
                    f"INSERT INTO tokens ({TOKEN_COLUMNS}) "  # noqa: S608
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                ),
                (
                    token.token_id,
                    token.token_sha256,
                    token.kind,
                    token.connector,
                    token.scopes,
                    token.subject,
                    token.repository_id,
                    token.run_id,
                    token.run_attempt,
                    token.check_run_id,
                    token.issued_at,
                    token.expires_at,
                    token.revoked_at,
                    int(token.shared_credential),
                ),
            )
            if upstream is not None:
                cur.execute(
                    self._sql(
                        "INSERT INTO job_upstream_tokens "
                        "(token_id, connector, sealed, expires_at) VALUES (?, ?, ?, ?)"
                    ),
                    (token.token_id, token.connector, upstream, token.expires_at),
                )
            return seq

        return self._write(body)
