"""The only package that reads or writes the database. Keyword-only functions.

Organizer actions go through an ORM ``Session`` and leave an audit event. The ballot hot path
(``submit_batch``) works on a Core ``Connection`` inside a transaction the writer owns, so that
many ballots share one commit (see app.writer). Each module holds one kind of record; this one
gathers their public names, so that callers write ``store.close_meeting(...)`` wherever it lives.
"""

from __future__ import annotations

from app.figures import group_specs as group_specs
from app.store.accounts import (
    authenticate_api_key as authenticate_api_key,
    change_password as change_password,
    count_api_keys as count_api_keys,
    count_users as count_users,
    create_api_key as create_api_key,
    create_user as create_user,
    end_session as end_session,
    find_active_user as find_active_user,
    get_user as get_user,
    is_known_browser as is_known_browser,
    list_api_keys as list_api_keys,
    list_users as list_users,
    revoke_api_key as revoke_api_key,
    session_user as session_user,
    sign_in as sign_in,
    start_session as start_session,
    touch_api_key as touch_api_key,
    update_user as update_user,
)
from app.store.ballot_templates import (
    get_template as get_template,
    list_templates as list_templates,
    save_template as save_template,
)
from app.store.ballots import (
    Outcome as Outcome,
    Spent as Spent,
    Submission as Submission,
    submit_batch as submit_batch,
)
from app.store.base import (
    API_KEY_PREFIX as API_KEY_PREFIX,
    API_SCOPES as API_SCOPES,
    AUDIT_PAGE as AUDIT_PAGE,
    CATEGORIES as CATEGORIES,
    DEFAULT_GROUPS as DEFAULT_GROUPS,
    MAX_MINT as MAX_MINT,
    audit as audit,
    audit_actors as audit_actors,
    is_empty as is_empty,
    list_audit as list_audit,
    seed_reference as seed_reference,
)
from app.store.box import (
    MixPlan as MixPlan,
    apply_mixes as apply_mixes,
    meeting_ballots as meeting_ballots,
    meetings_due as meetings_due,
    mix as mix,
    pending_count as pending_count,
    plan_mix as plan_mix,
    scrub as scrub,
)
from app.store.clock import database_now as database_now
from app.store.codes import (
    mint_token_batches as mint_token_batches,
    mint_tokens as mint_tokens,
    token_counts as token_counts,
    void_unused_tokens as void_unused_tokens,
)
from app.store.meetings import (
    Action as Action,
    close_meeting as close_meeting,
    counted_review as counted_review,
    create_meeting as create_meeting,
    delete_meeting as delete_meeting,
    get_meeting as get_meeting,
    latest_result as latest_result,
    list_meetings as list_meetings,
    open_meeting as open_meeting,
    reopen_meeting as reopen_meeting,
    result_version as result_version,
    results_of as results_of,
    seed_demo as seed_demo,
    shown_groups as shown_groups,
    unit_of as unit_of,
    void_meeting as void_meeting,
)
from app.store.phone import (
    BallotAccess as BallotAccess,
    ScreenMeeting as ScreenMeeting,
    TokenState as TokenState,
    ballot_access as ballot_access,
    claim_screen_code as claim_screen_code,
    screen_meeting as screen_meeting,
)
from app.store.results import (
    AuditMaterial as AuditMaterial,
    Verification as Verification,
    audit_material as audit_material,
    check_result_filters as check_result_filters,
    list_results as list_results,
    meeting_comments as meeting_comments,
    overview_units as overview_units,
    peer_results as peer_results,
    results_page as results_page,
    unit_year_result as unit_year_result,
    verify_meeting as verify_meeting,
)
from app.store.tallies import (
    TallyView as TallyView,
    published_figures as published_figures,
    tally as tally,
)
from app.store.units import (
    ImportOutcome as ImportOutcome,
    categories as categories,
    create_unit as create_unit,
    delete_unit as delete_unit,
    find_unit as find_unit,
    import_units as import_units,
    list_units as list_units,
    preview_import as preview_import,
    review_years as review_years,
    update_unit as update_unit,
)
from app.store.webhooks import (
    ClaimedDelivery as ClaimedDelivery,
    DeliveryLog as DeliveryLog,
    DeliveryStatus as DeliveryStatus,
    claim_deliveries as claim_deliveries,
    create_webhook as create_webhook,
    delete_webhook as delete_webhook,
    enqueue_result_event as enqueue_result_event,
    get_delivery as get_delivery,
    get_webhook as get_webhook,
    has_due_deliveries as has_due_deliveries,
    list_deliveries as list_deliveries,
    list_webhooks as list_webhooks,
    record_delivery_attempt as record_delivery_attempt,
    resend_delivery as resend_delivery,
)
