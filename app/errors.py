"""Domain errors and the words they are shown with.

Every problem a user can cause has a stable ``code`` and a message in Simplified Chinese
(the default) and English. Pure modules raise these; ``app.main`` maps them to HTTP answers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# code -> (Chinese, English). Placeholders are filled from Problem.params.
MESSAGES: dict[str, tuple[str, str]] = {
    # templates
    "template_invalid_json": ("模板不是有效的 JSON：{error}", "The template is not valid JSON: {error}"),
    "template_field": ("模板字段 {field} 有误：{error}", "Template field {field} is wrong: {error}"),
    "template_no_items": ("模板至少需要一个测评项目", "The template needs at least one item"),
    "template_empty_item": ("测评项目 {item} 没有测评要点", "Item {item} has no scoring points"),
    "template_duplicate_id": ("编号 {id} 重复出现", "The id {id} is used more than once"),
    "template_max_sum": (
        "各测评要点满分之和应为 100，现为 {total}",
        "The points' maxima must sum to 100, not {total}",
    ),
    "template_max_positive": (
        "测评要点 {point} 的满分应大于 0 且为 0.5 的整数倍，现为 {max}",
        "Point {point} needs a maximum above 0 in steps of 0.5, not {max}",
    ),
    "template_grade_fraction": (
        "等级 {grade} 的得分比例应在 0 到 1 之间，现为 {fraction}",
        "Grade {grade} needs a fraction between 0 and 1, not {fraction}",
    ),
    "template_no_grades": (
        "按等级打分的模板至少需要一个等级",
        "A template scored by grades needs at least one grade",
    ),
    "template_not_found": ("找不到模板 {id}", "No template {id}"),
    "template_version_not_found": ("模板 {id} 没有第 {version} 版", "Template {id} has no version {version}"),
    "template_version_taken": (
        "模板 {id} 的第 {version} 版已存在；新版本号应为 {next}",
        "Template {id} already has version {version}; the next is {next}",
    ),
    # ballots
    "ballot_unknown_point": ("测评要点 {point} 不在本测评票上", "Point {point} is not on this ballot"),
    "ballot_missing_point": ("测评要点 {point} 尚未打分", "Point {point} has no answer"),
    "ballot_unknown_grade": (
        "测评要点 {point} 的等级 {grade} 无效，可选：{allowed}",
        "Point {point}: grade {grade} is not one of {allowed}",
    ),
    "ballot_not_number": ("测评要点 {point} 应填数字，收到 {value}", "Point {point} needs a number, got {value}"),
    "ballot_number_range": (
        "测评要点 {point} 的分数应在 0 到 {max} 之间，收到 {value}",
        "Point {point} needs a score from 0 to {max}, got {value}",
    ),
    "ballot_number_step": (
        "测评要点 {point} 的分数应为 0.5 的整数倍，收到 {value}",
        "Point {point} needs a score in steps of 0.5, got {value}",
    ),
    "ballot_comment_too_long": (
        "意见建议最多 {max} 字，现为 {length} 字",
        "The comment may have at most {max} characters, not {length}",
    ),
    "token_unknown": (
        "无法识别这个测评码，请核对后重新输入",
        "This ballot code is not known; check it and try again",
    ),
    "token_other_meeting": ("这个测评码不属于本次评议会", "This ballot code belongs to another meeting"),
    "ballot_comment_control": (
        "意见建议中含有无法保存的控制字符，请删去后再提交",
        "The comment holds control characters that cannot be kept; remove them and send again",
    ),
    "token_void": ("这个测评码已作废", "This ballot code has been voided"),
    # meetings and lifecycle
    "meeting_not_found": ("找不到评议会 {id}", "No meeting {id}"),
    "meeting_not_open": ("评议会当前状态为“{state}”，不接受投票", "The meeting is {state}; it takes no ballots"),
    "meeting_transition": (
        "评议会当前状态为“{state}”，不能执行“{action}”",
        "The meeting is {state}; it cannot be {action}",
    ),
    "meeting_reason_required": ("重新开启需要填写书面理由", "Reopening needs a written reason"),
    "meeting_too_few_ballots": (
        "本评议会只有 {ballots} 张测评票，少于 {k} 张时结束会公开这几张票的内容，不能结束。"
        "请继续收票，或作废本次评议会",
        "The meeting has {ballots} ballots; closing with fewer than {k} would publish what those few said."
        " Collect more ballots, or cancel the meeting",
    ),
    "meeting_reclose_gap": (
        "上一版结果有 {published} 张票，现有 {total} 张，只多 {added} 张。两版结果相差少于 {k} 张票时，"
        "两相对比就能看出这几张票的内容，所以不能再次结束。请继续收票至至少 {needed} 张；"
        "确需结束的，由管理员填写理由并确认此风险（记入操作日志）",
        "The last result had {published} ballots and there are now {total}, only {added} more. Two versions that"
        " differ by fewer than {k} ballots show what those ballots said when compared, so the meeting cannot"
        " close again. Collect at least {needed} ballots in all; or an administrator may close it with a written"
        " reason that accepts this risk (kept in the audit log)",
    ),
    "meeting_reclose_reason": (
        "只有管理员可以在差额少于 {k} 张时再次结束，并须写明理由",
        "Only an administrator may close again with fewer than {k} new ballots, and only with a written reason",
    ),
    "meeting_not_closed": ("评议会尚未结束，没有最终结果", "The meeting is not closed; there is no final result yet"),
    "meeting_groups": ("评议人类别设置有误：{error}", "The rater groups are wrong: {error}"),
    "meeting_weights_sum": (
        "各类评议人权重之和应为 100%，现为 {total}%",
        "The group weights must sum to 100%, not {total}%",
    ),
    "meeting_weights_partial": (
        "权重要么全部填写，要么全部不填",
        "Give a weight for every group or for none",
    ),
    "meeting_unknown_group": ("本评议会没有评议人类别 {group}", "The meeting has no rater group {group}"),
    "meeting_group_required": (
        "本评议会按类别加权，发放测评码时必须指明评议人类别",
        "The meeting weights rater groups, so every ballot code needs a group",
    ),
    "meeting_tokens_closed": (
        "评议会已结束，不能再发放测评码",
        "The meeting is closed; no more ballot codes can be issued",
    ),
    "meeting_token_count": (
        "一次发放的测评码数量应在 1 到 {max} 之间",
        "Issue between 1 and {max} ballot codes at a time",
    ),
    # units
    "unit_not_found": ("找不到单位 {code}", "No unit {code}"),
    "unit_code_taken": ("单位编码 {code} 已存在", "The unit code {code} is already taken"),
    "unit_unknown_category": (
        "单位类别 {category} 无效，可选：{allowed}",
        "Category {category} is not one of {allowed}",
    ),
    "unit_field": ("{field} 不能为空", "{field} must not be empty"),
    "unit_in_use": (
        "单位 {code} 已有发过测评码或开启过的评议会，不能删除",
        "Unit {code} has a meeting that was opened or has codes; it cannot be deleted",
    ),
    "csv_row": ("第 {line} 行：{error}", "Line {line}: {error}"),
    "csv_header": (
        "第一行应为列名 单位编码,单位名称,单位类别（或 code,name,category；可另加一列 往年测评年度），现为 {header}",
        "The first line must be the header code,name,category (or in Chinese; optionally reviewed_years),"
        " not {header}",
    ),
    "csv_encoding": ("CSV 文件应为 UTF-8 或 GBK 编码", "The CSV file must be UTF-8 or GBK"),
    "csv_duplicate": (
        "单位编码 {code} 在文件中重复（另见第 {other} 行）",
        "Unit code {code} repeats (see line {other})",
    ),
    "xlsx_unreadable": (
        "无法读取这个 Excel 文件，请另存为 .xlsx 或 CSV UTF-8 后再试",
        "This Excel file cannot be read; save it as .xlsx or CSV UTF-8 and try again",
    ),
    "csv_empty": ("CSV 文件中没有单位", "The CSV file holds no units"),
    # organizer accounts
    "account_role": (
        "角色 {role} 无效，可选：admin/secretary/viewer",
        "Role {role} is not one of admin/secretary/viewer",
    ),
    "account_password": ("{error}", "{error}"),
    "account_taken": ("用户名 {username} 已存在", "The username {username} is taken"),
    "sign_in_failed": ("用户名或密码不正确", "Wrong username or password"),
    "sign_in_locked": (
        "密码错误次数过多，请 {minutes} 分钟后再试",
        "Too many wrong passwords; try again in {minutes} minutes",
    ),
    "csrf": (
        "页面已过期，请返回后重新提交（为安全起见，表单有时效）",
        "The page has expired; go back and submit again (forms expire for safety)",
    ),
    "sign_in_required": ("请先登录", "Please sign in"),
    "forbidden_category": (
        "您无权管理或查看“{category}”类别的单位",
        "You may not manage or see units of the category {category}",
    ),
    "api_key_scope": ("API 密钥权限 {scopes} 无效，可选：admin、export", "Scopes {scopes} must be admin and/or export"),
    # requests
    "request_invalid": ("请求内容有误：{error}", "The request is wrong: {error}"),
    "request_too_slow": (
        "请求内容在 {seconds} 秒内未传完，请检查网络后重试",
        "The request body did not arrive within {seconds} seconds; check the connection and try again",
    ),
    "too_many_guesses": (
        "输入错误的测评码次数过多，请 {seconds} 秒后再试",
        "Too many wrong ballot codes from here; try again in {seconds} seconds",
    ),
    "request_too_large": (
        "请求内容过大（上限 {limit} 字节）",
        "The request body is too large (limit {limit} bytes)",
    ),
    "not_authenticated": (
        "需要有效的 API 密钥（Authorization: Bearer …）",
        "A valid API key is needed (Authorization: Bearer …)",
    ),
    "forbidden": ("此 API 密钥无权执行该操作", "This API key may not do that"),
    "not_found": ("找不到该页面或资源", "Not found"),
    "disk_full": (
        "服务器磁盘已满，本次操作没有保存。请管理员腾出磁盘空间后再试。",
        "The server's disk is full, so nothing was saved. The administrator must free some space; then try again.",
    ),
    "internal": ("服务器内部错误，已记录，请稍后重试", "Internal error; it has been logged, please try again"),
    "internal_logged": (
        "服务器内部错误，已记录（错误编号 {error_id}），请稍后重试；如仍出错，请将错误编号告知管理员",
        "Internal error, logged as {error_id}; please try again, and quote that number to the administrator"
        " if it happens again",
    ),
    # results export, webhooks, audit export
    "results_unknown_filter": (
        "不支持的查询参数 {names}；可用：{allowed}",
        "Unknown query parameter {names}; allowed: {allowed}",
    ),
    "results_cursor": (
        "cursor 无效：请使用上一页返回的 next_cursor 原样传回",
        "The cursor is malformed: pass back the next_cursor of the previous page unchanged",
    ),
    "results_cursor_old": (
        "此 cursor 由升级前的版本生成，已不能使用："
        "请不带 cursor 从第一页重新读取（已有的结果按 meeting_id 和 result_version 去重）",
        "This cursor was made by the version before an upgrade and no longer works: read again from the first"
        " page without a cursor (keep results by meeting_id and result_version, so that none is taken twice)",
    ),
    "results_format": ("格式 {format} 无效，可选：json、csv、xlsx", "Format {format} is not one of json, csv, xlsx"),
    "results_table": ("表 {table} 无效，可选：{allowed}", "Table {table} is not one of {allowed}"),
    "results_none": (
        "单位 {unit} 在 {year} 年没有已结束的现场测评",
        "Unit {unit} has no closed on-site review in {year}",
    ),
    "composite_component": (
        "{name} 应为 0 到 100 之间的数字，收到 {value}",
        "{name} must be a number from 0 to 100, not {value}",
    ),
    "composite_weights": ("各部分权重之和应为 1，现为 {total}", "The weights must sum to 1, not {total}"),
    "composite_no_score": (
        "单位 {unit} 在 {year} 年的现场测评没有得分（票数不足）",
        "Unit {unit}'s on-site review of {year} has no score (too few ballots)",
    ),
    "webhook_not_found": ("找不到 Webhook {id}", "No webhook {id}"),
    "webhook_delivery_not_found": ("找不到推送记录 {id}", "No webhook delivery {id}"),
    "webhook_deleted": ("Webhook {id} 已删除，不能再推送", "Webhook {id} was deleted; nothing can be sent to it"),
    "audit_file": ("审计文件无法读取：{error}", "The audit file cannot be read: {error}"),
    "audit_digest": (
        "文件中的测评票与公布的摘要不符：有测评票被修改、增加或删除。公布的摘要 {published}，按文件计算 {computed}",
        "The ballots in the file do not match the published digest: a ballot was changed, added or removed."
        " Published {published}, computed from the file {computed}",
    ),
}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with what the user sent, named precisely enough to fix."""

    code: str
    params: dict[str, Any] = field(default_factory=dict)

    def message(self, lang: str = "zh") -> str:
        zh, en = MESSAGES[self.code]
        text = en if lang == "en" else zh
        return text.format(**self.params)


class DomainError(Exception):
    """Base of every error whose message is meant for the user."""

    status = 400

    def __init__(self, error_code: str, /, *, problems: list[Problem] | None = None, **params: Any) -> None:
        self.problem = Problem(error_code, params)
        self.problems = problems or []
        super().__init__(self.problem.message("en"))

    def message(self, lang: str = "zh") -> str:
        return self.problem.message(lang)


class Invalid(DomainError):
    """The input is malformed or breaks a rule; nothing was changed."""

    status = 422


class NotFound(DomainError):
    status = 404


class Conflict(DomainError):
    """The request is well formed but the state of things forbids it (HTTP 409)."""

    status = 409


class Unauthorized(DomainError):
    status = 401


class Forbidden(DomainError):
    status = 403


class TooManyGuesses(DomainError):
    status = 429


class TooLarge(DomainError):
    status = 413


def invalid_with(problems: list[Problem]) -> Invalid:
    """An Invalid whose headline is the first problem and which carries them all."""
    first = problems[0]
    return Invalid(first.code, problems=problems, **first.params)
