"""The only package that reads or writes the database. Keyword-only functions.

Organizer actions go through an ORM ``Session`` and leave an audit event. The ballot hot path
(``submit_batch``) works on a Core ``Connection`` inside a transaction the writer owns, so that
many ballots share one commit (see app.writer). Each module holds one kind of thing; this one
gathers their names, so that callers write ``store.close_meeting(...)`` whatever module it is in.
"""

from __future__ import annotations

from app.store.accounts import (
    _DUMMY_HASH as _DUMMY_HASH,
)
from app.store.accounts import (
    _aware as _aware,
)
from app.store.accounts import (
    _check_account as _check_account,
)
from app.store.accounts import (
    _key_hash as _key_hash,
)
from app.store.accounts import (
    authenticate_api_key as authenticate_api_key,
)
from app.store.accounts import (
    change_password as change_password,
)
from app.store.accounts import (
    count_api_keys as count_api_keys,
)
from app.store.accounts import (
    count_users as count_users,
)
from app.store.accounts import (
    create_api_key as create_api_key,
)
from app.store.accounts import (
    create_user as create_user,
)
from app.store.accounts import (
    find_active_user as find_active_user,
)
from app.store.accounts import (
    get_user as get_user,
)
from app.store.accounts import (
    list_api_keys as list_api_keys,
)
from app.store.accounts import (
    list_users as list_users,
)
from app.store.accounts import (
    revoke_api_key as revoke_api_key,
)
from app.store.accounts import (
    sign_in as sign_in,
)
from app.store.accounts import (
    touch_api_key as touch_api_key,
)
from app.store.accounts import (
    update_user as update_user,
)
from app.store.ballot_templates import (
    _parse_cached as _parse_cached,
)
from app.store.ballot_templates import (
    get_template as get_template,
)
from app.store.ballot_templates import (
    list_templates as list_templates,
)
from app.store.ballot_templates import (
    save_template as save_template,
)
from app.store.ballots import (
    Outcome as Outcome,
)
from app.store.ballots import (
    Submission as Submission,
)
from app.store.ballots import (
    _advance_tally as _advance_tally,
)
from app.store.ballots import (
    _MeetingInfo as _MeetingInfo,
)
from app.store.ballots import (
    _spend_one as _spend_one,
)
from app.store.ballots import (
    submit_batch as submit_batch,
)
from app.store.base import (
    API_KEY_PREFIX as API_KEY_PREFIX,
)
from app.store.base import (
    API_SCOPES as API_SCOPES,
)
from app.store.base import (
    AUDIT_PAGE as AUDIT_PAGE,
)
from app.store.base import (
    CATEGORIES as CATEGORIES,
)
from app.store.base import (
    DEFAULT_GROUPS as DEFAULT_GROUPS,
)
from app.store.base import (
    MAX_MINT as MAX_MINT,
)
from app.store.base import (
    audit as audit,
)
from app.store.base import (
    audit_actors as audit_actors,
)
from app.store.base import (
    is_empty as is_empty,
)
from app.store.base import (
    list_audit as list_audit,
)
from app.store.base import (
    seed_reference as seed_reference,
)
from app.store.codes import (
    mint_tokens as mint_tokens,
)
from app.store.codes import (
    token_counts as token_counts,
)
from app.store.codes import (
    void_unused_tokens as void_unused_tokens,
)
from app.store.meetings import (
    _ACTION_ZH as _ACTION_ZH,
)
from app.store.meetings import (
    _ALLOWED as _ALLOWED,
)
from app.store.meetings import (
    _STATE_ZH as _STATE_ZH,
)
from app.store.meetings import (
    Action as Action,
)
from app.store.meetings import (
    StoredBallot as StoredBallot,
)
from app.store.meetings import (
    Verification as Verification,
)
from app.store.meetings import (
    _check_groups as _check_groups,
)
from app.store.meetings import (
    _require_state as _require_state,
)
from app.store.meetings import (
    ballot_set_digest as ballot_set_digest,
)
from app.store.meetings import (
    close_meeting as close_meeting,
)
from app.store.meetings import (
    create_meeting as create_meeting,
)
from app.store.meetings import (
    enqueue_result_event as enqueue_result_event,
)
from app.store.meetings import (
    figures_for as figures_for,
)
from app.store.meetings import (
    get_meeting as get_meeting,
)
from app.store.meetings import (
    group_specs as group_specs,
)
from app.store.meetings import (
    latest_result as latest_result,
)
from app.store.meetings import (
    list_meetings as list_meetings,
)
from app.store.meetings import (
    meeting_ballots as meeting_ballots,
)
from app.store.meetings import (
    meeting_comments as meeting_comments,
)
from app.store.meetings import (
    open_meeting as open_meeting,
)
from app.store.meetings import (
    peer_results as peer_results,
)
from app.store.meetings import (
    reopen_meeting as reopen_meeting,
)
from app.store.meetings import (
    rules_of as rules_of,
)
from app.store.meetings import (
    seed_demo as seed_demo,
)
from app.store.meetings import (
    tally as tally,
)
from app.store.meetings import (
    unit_of as unit_of,
)
from app.store.meetings import (
    verify_meeting as verify_meeting,
)
from app.store.phone import (
    BallotAccess as BallotAccess,
)
from app.store.phone import (
    ScreenMeeting as ScreenMeeting,
)
from app.store.phone import (
    TokenState as TokenState,
)
from app.store.phone import (
    _live_tokens as _live_tokens,
)
from app.store.phone import (
    ballot_access as ballot_access,
)
from app.store.phone import (
    claim_screen_code as claim_screen_code,
)
from app.store.phone import (
    is_code_of_meeting as is_code_of_meeting,
)
from app.store.phone import (
    screen_meeting as screen_meeting,
)
from app.store.results import (
    AuditMaterial as AuditMaterial,
)
from app.store.results import (
    ClaimedDelivery as ClaimedDelivery,
)
from app.store.results import (
    DeliveryLog as DeliveryLog,
)
from app.store.results import (
    DeliveryStatus as DeliveryStatus,
)
from app.store.results import (
    _latest_results as _latest_results,
)
from app.store.results import (
    _url_for_log as _url_for_log,
)
from app.store.results import (
    _with_attempts as _with_attempts,
)
from app.store.results import (
    audit_material as audit_material,
)
from app.store.results import (
    check_result_filters as check_result_filters,
)
from app.store.results import (
    claim_deliveries as claim_deliveries,
)
from app.store.results import (
    create_webhook as create_webhook,
)
from app.store.results import (
    delete_webhook as delete_webhook,
)
from app.store.results import (
    get_delivery as get_delivery,
)
from app.store.results import (
    get_webhook as get_webhook,
)
from app.store.results import (
    has_due_deliveries as has_due_deliveries,
)
from app.store.results import (
    list_deliveries as list_deliveries,
)
from app.store.results import (
    list_results as list_results,
)
from app.store.results import (
    list_webhooks as list_webhooks,
)
from app.store.results import (
    overview_units as overview_units,
)
from app.store.results import (
    record_delivery_attempt as record_delivery_attempt,
)
from app.store.results import (
    resend_delivery as resend_delivery,
)
from app.store.results import (
    unit_year_result as unit_year_result,
)
from app.store.units import (
    _category_keys as _category_keys,
)
from app.store.units import (
    categories as categories,
)
from app.store.units import (
    create_unit as create_unit,
)
from app.store.units import (
    find_unit as find_unit,
)
from app.store.units import (
    import_units as import_units,
)
from app.store.units import (
    list_units as list_units,
)
from app.store.units import (
    preview_import as preview_import,
)
from app.store.units import (
    update_unit as update_unit,
)
