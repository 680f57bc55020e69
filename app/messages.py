"""Every word the service says to a person, in Simplified Chinese and in English. Pure.

One catalogue for the errors (the API's ``detail``, the console's messages, the command line), the
phone pages, the projector and the card sheet. Code raises values, never words:
``Conflict("meeting_transition", state="closed", action="close")``. The edge renders them here, in the
reader's language: a parameter named in TERMS is itself a word to translate, and a Problem (or a
list of them) among the parameters is rendered in the same language. So an English answer holds no
Chinese fragment, and the other way round.

Kept whole, over 400 lines, on purpose: it is a catalogue, read by key and never from top to
bottom, and its two languages stand side by side so that tests/test_messages.py can hold them to
each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Lang = Literal["zh", "en"]
LANGS: tuple[Lang, ...] = ("zh", "en")
DEFAULT_LANG: Lang = "zh"

# key -> (Chinese, English). Placeholders are filled by name.
MESSAGES: dict[str, tuple[str, str]] = {
    # ---- errors: what went wrong, named precisely enough to fix -------------------------------
    # templates
    "template_invalid_json": (
        "模板不是有效的 JSON（第 {line} 行第 {column} 列有误）",
        "The template is not valid JSON (the error is at line {line}, column {column})",
    ),
    "template_not_utf8": ("模板应为 UTF-8 编码的 JSON 文本", "The template must be JSON text in UTF-8"),
    "template_field": ("模板字段 {path} {error}", "Template field {path} {error}"),
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
    "token_spent_different": (
        "这个测评码已投过票，不能再次投票或修改",
        "This ballot code has already been used; a ballot cannot be cast twice or changed",
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
    "meeting_void_reason_required": ("作废评议会需要填写书面理由", "Voiding a meeting needs a written reason"),
    "meeting_delete_not_draft": (
        "只能删除尚未开启的评议会；已开启过的评议会可以作废（填写理由），记录会保留",
        "Only a meeting that never opened can be deleted; a meeting that opened can be voided"
        " with a written reason, and its record is kept",
    ),
    "meeting_unit_year_counted": (
        "{unit} 的 {year} 年度已有一次计入结果的评议会（评议会 {other}）。每个单位每年只计一次；"
        "如需以本次为准，请先作废评议会 {other}",
        "{unit} already has a counted review for {year} (meeting {other}). A unit counts once a year;"
        " to count this one instead, void meeting {other} first",
    ),
    "meeting_voided": (
        "评议会已作废，不计入结果；可按版本号查看作废前公布的结果",
        "The meeting was voided and does not count; results published before can be read by version",
    ),
    "result_version_not_found": (
        "评议会 {id} 没有第 {version} 版结果",
        "Meeting {id} has no result version {version}",
    ),
    "meeting_not_closed": ("评议会尚未结束，没有最终结果", "The meeting is not closed; there is no final result yet"),
    "meeting_no_groups": ("至少需要一个评议人类别", "A meeting needs at least one rater group"),
    "meeting_group_repeats": ("评议人类别编号 {key} 重复出现", "The rater group key {key} is used more than once"),
    "meeting_weight_not_number": ("权重 {weight} 不是数字", "The weight {weight} is not a number"),
    "meeting_weight_negative": ("权重不能为负数，收到 {weight}", "A weight cannot be negative, not {weight}"),
    "meeting_screen_weights": (
        "扫屏领取的测评码不分评议人类别，扫屏方式的评议会不能按类别加权",
        "Codes claimed from the screen have no rater group, so a screen meeting cannot weight groups",
    ),
    "meeting_not_screen": ("本评议会使用测评卡，不是扫屏方式", "This meeting uses cards, not the screen"),
    "meeting_date_year": ("日期 {date} 不在 {year} 年内", "The date {date} is not in the year {year}"),
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
        "评议会{state}，不能再发放测评码",
        "The meeting is {state}; no more ballot codes can be issued",
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
    "csv_row": ("第 {line} 行：{error}", "Line {line}: {error}"),
    "csv_columns": ("应有 {expected} 列，实有 {count} 列", "{count} columns where {expected} are expected"),
    "csv_code_length": ("单位编码应为 1–{max} 个字符", "The unit code must have 1–{max} characters"),
    "csv_name_length": ("单位名称应为 1–{max} 个字符", "The unit name must have 1–{max} characters"),
    "csv_header": (
        "第一行应为列名 单位编码,单位名称,单位类别（或 code,name,category；可另加一列 往年测评年度），现为 {header}",
        "The first line must be the header code,name,category (or in Chinese; optionally reviewed_years),"
        " not {header}",
    ),
    "csv_encoding": ("CSV 文件应为 UTF-8 或 GBK 编码", "The CSV file must be UTF-8 or GBK"),
    "csv_years": (
        "往年测评年度 {years} 应为 {first}–{last} 的年份，多个年份用顿号分隔",
        "The reviewed years {years} must be years from {first} to {last}, separated by commas",
    ),
    "csv_duplicate": (
        "单位编码 {code} 在文件中重复（另见第 {other} 行）",
        "Unit code {code} repeats (see line {other})",
    ),
    "xlsx_unreadable": (
        "无法读取这个 Excel 文件，请另存为 .xlsx 或 CSV UTF-8 后再试",
        "This Excel file cannot be read; save it as .xlsx or CSV UTF-8 and try again",
    ),
    "csv_empty": ("CSV 文件中没有单位", "The CSV file holds no units"),
    "import_too_large": (
        "文件过大（上限 {limit} 字节）；单位列表远小于此",
        "The file is too large (limit {limit} bytes); a unit list is far smaller",
    ),
    "xlsx_too_large": (
        "这个 Excel 文件解压后过大（上限 {limit} 字节），请只保留单位列表后另存再试",
        "This workbook is too large once unpacked (limit {limit} bytes); keep only the unit list, save it and"
        " try again",
    ),
    "import_too_many_rows": (
        "文件中的行数过多（最多 {max} 个单位）",
        "The file has too many rows (at most {max} units)",
    ),
    "import_payload_damaged": (
        "导入内容已损坏，请重新选择文件",
        "The import was damaged on the way; choose the file again",
    ),
    "import_no_file": ("请选择一个 CSV 或 Excel（.xlsx）文件", "Choose a CSV or Excel (.xlsx) file"),
    # organizer accounts
    "account_role": (
        "角色 {role} 无效，可选：admin/secretary/viewer",
        "Role {role} is not one of admin/secretary/viewer",
    ),
    "password_too_short": ("密码至少需要 {min} 个字符", "A password needs at least {min} characters"),
    "password_has_username": ("密码不能包含用户名", "A password must not contain the username"),
    "password_current_wrong": ("当前密码不正确", "The current password is wrong"),
    "password_confirm": ("两次输入的新密码不一致", "The two new passwords differ"),
    "account_taken": ("用户名 {username} 已存在", "The username {username} is taken"),
    # One answer for every failed sign-in, whatever the cause: an unknown name, a wrong password or
    # the pause after repeated failures must not be told apart (no user enumeration).
    "sign_in_failed": (
        "用户名或密码不正确。连续输错 {attempts} 次后，未在本账号登录过的浏览器需等待 {minutes} 分钟再试",
        "Wrong username or password. After {attempts} failures in a row, browsers that have not signed in to"
        " this account before wait {minutes} minutes",
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
    # closing a meeting: K ballots, and K more to close again (app.disclosure)
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
    "unit_in_use": (
        "单位 {code} 已有发过测评码或开启过的评议会，不能删除",
        "Unit {code} has a meeting that was opened or has codes; it cannot be deleted",
    ),
    # the server's own troubles
    "disk_full": (
        "服务器磁盘已满，本次操作没有保存。请管理员腾出磁盘空间后再试。",
        "The server's disk is full, so nothing was saved. The administrator must free some space; then try again.",
    ),
    "internal_logged": (
        "服务器内部错误，已记录（错误编号 {error_id}），请稍后重试；如仍出错，请将错误编号告知管理员",
        "Internal error, logged as {error_id}; please try again, and quote that number to the administrator if it"
        " happens again",
    ),
    "results_cursor_old": (
        "此 cursor 由升级前的版本生成，已不能使用：请不带 cursor 从第一页重新读取（已有的结果按 meeting_id 和"
        " result_version 去重）",
        "This cursor was made by the version before an upgrade and no longer works: read again from the first page"
        " without a cursor (keep results by meeting_id and result_version, so that none is taken twice)",
    ),
    # requests
    "request_invalid": ("请求内容有误：{error}", "The request is wrong: {error}"),
    "request_json": (
        "请求内容不是有效的 JSON（第 {position} 个字符处有误）",
        "The request body is not valid JSON (the error is at character {position})",
    ),
    "request_unreadable": ("无法读取请求内容", "The request body cannot be read"),
    "method_not_allowed": ("该地址不接受这种请求方法", "This address does not take this request method"),
    "number_out_of_range": ("数值超出范围", "a number is out of range"),
    "request_control": (
        "网址中含有控制字符（如 NUL），请检查后重试",
        "The address holds a control character (such as NUL); check it and try again",
    ),
    "text_control": (
        "{field} 含有控制字符（如 NUL 或单行文字中的换行），请删除后再提交",
        "{field} holds a control character (such as NUL, or a line break in one-line text); remove it and"
        " send again",
    ),
    "text_blank": ("{field} 不能只有空格", "{field} must not be blank"),
    # One problem with one field of a request, as FastAPI's validation names it.
    "field_reason": ("{field} {reason}", "{field} {reason}"),
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
    "internal": ("服务器内部错误，已记录，请稍后重试", "Internal error; it has been logged, please try again"),
    # results export, webhooks, audit export
    "results_unknown_filter": (
        "不支持的查询参数 {names}；可用：{allowed}",
        "Unknown query parameter {names}; allowed: {allowed}",
    ),
    "results_cursor": (
        "cursor 无效：请使用上一页返回的 next_cursor 原样传回",
        "The cursor is malformed: pass back the next_cursor of the previous page unchanged",
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
    "webhook_url_unreadable": ("{field} 不是可以发送请求的网址", "{field} is not an address a request can be sent to"),
    "webhook_address_refused": (
        "Webhook 主机 {host} 指向本机、内网、链路本地或云平台元数据地址（{address}），不能推送；"
        "推送到内网系统时，请在 ONSITE_BALLOT_WEBHOOK_ALLOWED_HOSTS 中列出该主机",
        "The webhook host {host} points at this machine, a private or link-local network or a metadata"
        " address ({address}); to send to a system on the intranet, list the host in"
        " ONSITE_BALLOT_WEBHOOK_ALLOWED_HOSTS",
    ),
    "webhook_host_unknown": ("无法解析 Webhook 主机名 {host}", "The webhook host {host} cannot be resolved"),
    "webhook_delivery_not_found": ("找不到推送记录 {id}", "No webhook delivery {id}"),
    "webhook_deleted": ("Webhook {id} 已删除，不能再推送", "Webhook {id} was deleted; nothing can be sent to it"),
    "audit_file": ("审计文件无法读取：{error}", "The audit file cannot be read: {error}"),
    "audit_not_utf8": ("不是 UTF-8 文本", "it is not UTF-8 text"),
    "audit_csv_first_row": ("CSV 第一行应以 {format} 开头", "the CSV's first row must start with {format}"),
    "audit_csv_header": ("CSV 第二行应以 {header} 开头", "the CSV's second row must start with {header}"),
    "audit_csv_cells": (
        "第 {line} 行有 {cells} 个单元格，表头有 {header} 个",
        "line {line} has {cells} cells, the header {header}",
    ),
    "audit_csv_meta": ("CSV 第一行的说明不是有效的 JSON", "the description in the CSV's first row is not valid JSON"),
    # what the figures say when there is no score
    "figures_insufficient": (
        "评议人类别设置有误：{groups} 的有效票数少于 K，无法计算加权得分",
        "{groups}: fewer than K ballots, so there is no weighted score",
    ),
    "figures_no_ballots": ("尚无有效测评票", "No valid ballots yet"),
    "figures_too_few": (
        "有效测评票太少，为保护匿名不公布得分（否则会公开这几张票的内容）",
        "Too few valid ballots: no score is published, as it would show what those few said",
    ),
    # the answers of POST /api/v1/ballots
    "ballot_counted": (
        "您的测评票已计入。投票是匿名的，任何人都无法知道您的选择。",
        "Your ballot has been counted. It is anonymous: nobody can tell what you chose.",
    ),
    "ballot_already": (
        "这张测评票此前已经计入，无需再次提交。",
        "This ballot was already counted; there is nothing more to do.",
    ),
    "audit_digest": (
        "文件与公布的摘要不符：测评票、计分规则、模板、往版记录或单位信息有改动。"
        "公布的摘要 {published}，按文件计算 {computed}",
        "The file does not match the published digest: a ballot, a counting rule, the template, an earlier"
        " version or the unit was changed. Published {published}, computed from the file {computed}",
    ),

    # ---- the phone pages, the projector, the card sheet ---------------------------------------
    # every page
    "site_name": ("现场测评", "On-site ballot"),
    "switch_to": ("English", "中文"),
    "html_lang": ("zh-CN", "en"),
    # the ballot
    "ballot_for": ("被评议单位：{unit}", "Unit under review: {unit}"),
    "ballot_intro": (
        "请对下面 {count} 个测评要点逐项打分，每项点一下即可。本票不记名，任何人都无法知道您的选择。",
        "Score each of the {count} points below with one tap. The ballot is anonymous: nobody can tell"
        " what you chose.",
    ),
    "item_max": ("{max} 分", "{max} points"),
    "point_max": ("满分 {max} 分", "out of {max}"),
    "grade_score": ("{score} 分", "{score} pts"),
    "number_label": ("分数（0 到 {max}，可填 .5）", "Score (0 to {max}, halves allowed)"),
    "comment_label": ("意见建议（选填）", "Comments and suggestions (optional)"),
    "comment_note": (
        "意见建议在评议会结束后才会给组织者看到，不会显示是谁写的。",
        "Comments are shown to the organizers only after the meeting closes, never with who wrote them.",
    ),
    "submit": ("提交测评票", "Submit my ballot"),
    "submit_note": ("提交后不能修改。", "A ballot cannot be changed once it is submitted."),
    "total_label": ("合计", "Total"),
    "left": ("还有 {n} 项未打分", "{n} points left"),
    "all_answered": ("已全部打分，可以提交", "All points answered: ready to submit"),
    "fix_below": ("还不能计入：有 {n} 处需要补充或修改，已用“！”标出。", "Not counted yet: {n} points need"
                  " an answer or a change; they are marked with “!”."),
    "missing_js": ("还有 {n} 项未打分，已用“！”标出。", "{n} points still need an answer; they are marked"
                   " with “!”."),
    "sending": ("正在提交……", "Sending…"),
    "send_offline": (
        "没有提交成功：手机没有连上网络。您的打分已保存在本机，连上网络后请点“重新提交”。",
        "Not sent: the phone is offline. Your answers are kept on this phone; once you are back online,"
        " press “Send again”.",
    ),
    "send_failed": (
        "没有提交成功。您的打分已保存在本机，请点“重新提交”。",
        "Not sent. Your answers are kept on this phone; press “Send again”.",
    ),
    "send_refused": ("没有计入：{reason}", "Not counted: {reason}"),
    "write_failed": (
        "服务器暂时没有保存成功，本票没有计入。您的打分都还在，请再点一次“提交测评票”。",
        "The server could not save the ballot just now, so it was not counted. Your answers are all"
        " still here: press “Submit my ballot” again.",
    ),
    "retry": ("重新提交", "Send again"),
    "draft_restored": ("已恢复您在本机上未提交的打分。", "Your unsent answers on this phone were restored."),
    # problems next to a point or the comment
    "problem_missing": ("请为这一项打分", "Please answer this point"),
    "problem_grade": ("请从下面的等级中选一个", "Please choose one of the grades below"),
    "problem_not_number": ("请填写数字", "Please enter a number"),
    "problem_range": ("分数应在 0 到 {max} 之间", "The score must be from 0 to {max}"),
    "problem_step": ("请以 0.5 分为单位填写，如 4 或 4.5", "Use whole or half points, such as 4 or 4.5"),
    "problem_unknown_point": (
        "提交的内容里有本测评票上没有的项目，请在本页重新提交。",
        "The form held points that are not on this ballot; please submit again from this page.",
    ),
    "problem_comment_long": (
        "意见建议最多 {max} 字，现为 {length} 字，请删减后再提交",
        "Comments may have at most {max} characters, not {length}; please shorten them",
    ),
    "problem_comment_control": (
        "意见建议里有看不见的控制字符，请删除后再提交",
        "The comment holds an invisible control character; please remove it",
    ),
    # after submitting
    "thanks_title": ("已计入", "Counted"),
    "send_timeout": (
        "服务器 {seconds} 秒内没有回应，本票可能还没有计入。您的打分已保存在本机，请点“重新提交”；如果其实已经计入，"
        "会显示“已经计入”，不会重复计票。",
        "No answer from the server within {seconds} seconds, so the ballot may not be counted yet. Your answers are"
        " kept on this phone: press “Send again”. If it was counted after all, you will see “already counted”;"
        " it is never counted twice.",
    ),
    "send_closed": (
        "评议会已经结束，不再接受投票，本票没有计入。",
        "The meeting has closed and takes no more ballots; this ballot was not counted.",
    ),
    "review_title": ("提交前请核对", "Check before you submit"),
    "review_note": (
        "下面是您对 {count} 个要点的打分。要修改，点“返回修改”或点某一项。",
        "These are your answers to the {count} points. To change one, press “Back to change” or the point.",
    ),
    "review_comment": ("意见建议：已填写", "Comments: written"),
    "review_confirm": ("确认提交", "Submit now"),
    "review_back": ("返回修改", "Back to change"),
    "error_title": ("服务器出错了", "The server ran into an error"),
    "error_body": (
        "请稍后再试；您在本机打过的分仍然保存着。如果一直出错，请把错误编号 {error_id} 告诉工作人员。",
        "Please try again in a moment; the answers on this phone are still kept. If it keeps happening, give the"
        " staff the error number {error_id}.",
    ),
    "disk_full_body": (
        "服务器磁盘已满，刚才的操作没有保存；您在本机打过的分仍然保存着。请告诉工作人员，稍后再试。",
        "The server's disk is full, so nothing was saved; the answers on this phone are still kept. Please tell the"
        " staff, and try again later.",
    ),
    "screen_taken": ("已领取", "Codes taken"),
    "screen_counted": ("已投票", "Ballots counted"),
    "screen_attendance": ("应到人数", "Attendance"),
    "screen_live": ("实时更新", "Live"),
    "screen_reconnecting": ("连接中断，正在重新连接……", "Connection lost; reconnecting…"),
    "state_draft": ("尚未开始投票", "Voting has not started"),
    "state_open": ("投票进行中", "Voting is open"),
    "state_closed": ("投票已结束", "Voting has closed"),
    "state_voided": ("本场评议会已作废", "This meeting was voided"),
    "thanks_counted": ("您的测评票已计入。", "Your ballot has been counted."),
    "thanks_already": ("这张测评票此前已经计入，无需再次提交。", "This ballot was already counted; there is"
                       " nothing more to do."),
    "thanks_anonymous": (
        "测评票不记名：系统不记录您是谁、用的哪部手机、何时提交，任何人都无法知道您的选择。",
        "The ballot is anonymous: the system records nothing about who you are, which phone you used or"
        " when you voted, and nobody can tell what you chose.",
    ),
    "thanks_close": ("现在可以关闭本页面。", "You may close this page now."),
    # plain pages
    "not_open_title": ("评议会还没有开始投票", "Voting has not started yet"),
    "not_open_body": (
        "请等主持人宣布开始测评后，再刷新本页面。",
        "Please reload this page once the chair announces that voting has started.",
    ),
    "closed_title": ("评议会已经结束", "The meeting is closed"),
    "closed_body": ("本次评议会已经结束，不再接受投票。", "This meeting is over; it takes no more ballots."),
    "spent_title": ("这张测评票已经计入", "This ballot has already been counted"),
    "spent_body": (
        "这个测评码已经投过票，票已计入，不能再次投票或修改。",
        "This code has been used: its ballot was counted and cannot be cast again or changed.",
    ),
    "unknown_title": ("无法识别这个测评码", "This ballot code is not known"),
    "unknown_body": (
        "请核对卡片上的测评码，在下面重新输入；仍然不行，请找工作人员。",
        "Check the code on your card and type it again below; if that fails, please ask the staff.",
    ),
    "void_title": ("这个测评码已作废", "This ballot code has been voided"),
    "void_body": ("请向工作人员领取一张新的测评卡。", "Please ask the staff for a new card."),
    "form_title": ("提交的内容无法读取", "The form could not be read"),
    "form_body": (
        "请回到测评页面重新提交；在本机打过的分仍然保存着。",
        "Please go back to the ballot page and submit again; the answers on this phone are still kept.",
    ),
    "back_to_ballot": ("回到测评页面", "Back to the ballot"),
    "type_code": ("输入测评码", "Type a ballot code"),
    # the entry page
    "entry_title": ("输入测评码", "Type your ballot code"),
    "entry_help": (
        "请输入测评卡上的测评码，例如 K7M-Q2X-9PA-R。大小写、空格和短横线都没有关系。",
        "Type the code printed on your card, such as K7M-Q2X-9PA-R. Upper or lower case, spaces and"
        " dashes do not matter.",
    ),
    "entry_label": ("测评码", "Ballot code"),
    "entry_submit": ("打开测评票", "Open my ballot"),
    "entry_invalid": (
        "这不是有效的测评码：测评码由 10 个字母和数字组成，请核对后重新输入。",
        "That is not a ballot code: a code has 10 letters and digits. Please check it and try again.",
    ),
    # the screen claim
    "claim_title": ("领取测评票", "Get your ballot"),
    "claim_body": (
        "每人只领一张。点下面的按钮后，您的测评票会直接打开。",
        "One per person. Press the button and your ballot opens.",
    ),
    "claim_button": ("领取我的测评票", "Get my ballot"),
    "pool_empty_title": ("测评票已经领完", "No ballots are left"),
    "pool_empty_body": (
        "本次评议会的 {n} 张测评票已全部领取。如果您还没有投票，请找工作人员领取测评卡。",
        "All {n} ballots of this meeting have been taken. If you have not voted yet, please ask the staff"
        " for a card.",
    ),
    "guess_title": ("请稍后再试", "Please wait a moment"),
    "guess_body": (
        "这台设备输入错误的测评码次数过多，请 {seconds} 秒后再试；如有疑问，请找工作人员。",
        "Too many wrong ballot codes were typed here; try again in {seconds} seconds, or ask the staff.",
    ),
    "page_missing_title": ("找不到这个页面", "This page does not exist"),
    "page_missing_body": (
        "请重新扫描卡片上的二维码，或输入测评码。",
        "Scan the code on your card again, or type the code.",
    ),
    "link_unknown_title": ("无法识别这个链接", "This link is not known"),
    "link_unknown_body": (
        "请重新扫描屏幕上的二维码，或找工作人员。",
        "Please scan the code on the screen again, or ask the staff.",
    ),
    # the projector
    "screen_scan": ("请用手机扫码参加测评", "Scan with your phone to vote"),
    "screen_or_type": ("无法扫码时，在手机浏览器中输入：", "Cannot scan? Type this address in your phone's browser:"),
    "screen_claimed": ("已领取 {claimed} / {attendance} 张", "{claimed} of {attendance} ballots taken"),
    "screen_anonymous": ("不记名 · 每人一票", "Anonymous · one ballot each"),
    # the card sheet
    "cards_title": ("测评卡", "Ballot cards"),
    "cards_note": (
        "共 {count} 张。请用 A4 纸打印（不缩放），沿虚线裁开，洗乱后发放。测评码只显示这一次，"
        "本页不要保存或转发；丢失后请重新生成并作废旧卡。",
        "{count} cards. Print on A4 at 100%, cut along the dashed lines, shuffle, hand out. These codes are"
        " shown this once: do not save or forward this page; if it is lost, make new cards and void the"
        " old ones.",
    ),
    "card_scan": ("扫码测评", "Scan to vote"),
    "card_or_type": ("无法扫码时，打开 {url} 输入：", "Cannot scan? Open {url} and type:"),
    "card_group": ("评议人类别 {letter}：{name}", "Rater group {letter}: {name}"),
    "card_anonymous": ("不记名 · 只能使用一次", "Anonymous · single use"),
}

# Why one field of a request was refused: FastAPI's (pydantic's) error types, said in both
# languages. Read as a predicate after the field's name: "body.year must be at least 2000".
REASONS: dict[str, tuple[str, str]] = {
    "missing": ("必须填写", "is required"),
    "extra_forbidden": ("不是可用的字段", "is not a field this request takes"),
    "string_type": ("应为文字", "must be text"),
    "string_too_short": ("至少需要 {min_length} 个字符", "needs at least {min_length} characters"),
    "string_too_long": ("最多 {max_length} 个字符", "may have at most {max_length} characters"),
    "string_pattern_mismatch": ("格式不正确", "does not have the expected form"),
    "int_type": ("应为整数", "must be a whole number"),
    "int_parsing": ("应为整数", "must be a whole number"),
    "int_from_float": ("应为整数", "must be a whole number"),
    "float_type": ("应为数字", "must be a number"),
    "float_parsing": ("应为数字", "must be a number"),
    "decimal_parsing": ("应为数字", "must be a number"),
    "bool_type": ("应为 true 或 false", "must be true or false"),
    "bool_parsing": ("应为 true 或 false", "must be true or false"),
    "greater_than": ("应大于 {gt}", "must be more than {gt}"),
    "greater_than_equal": ("应不小于 {ge}", "must be at least {ge}"),
    "less_than": ("应小于 {lt}", "must be less than {lt}"),
    "less_than_equal": ("应不大于 {le}", "must be at most {le}"),
    "date_type": ("应为日期，如 2026-12-03", "must be a date such as 2026-12-03"),
    "date_parsing": ("应为日期，如 2026-12-03", "must be a date such as 2026-12-03"),
    "date_from_datetime_parsing": ("应为日期，如 2026-12-03", "must be a date such as 2026-12-03"),
    "date_from_datetime_inexact": ("应为日期，如 2026-12-03", "must be a date such as 2026-12-03"),
    "datetime_type": ("应为时间，如 2026-12-03T09:00:00Z", "must be a time such as 2026-12-03T09:00:00Z"),
    "datetime_parsing": ("应为时间，如 2026-12-03T09:00:00Z", "must be a time such as 2026-12-03T09:00:00Z"),
    "datetime_from_date_parsing": (
        "应为时间，如 2026-12-03T09:00:00Z", "must be a time such as 2026-12-03T09:00:00Z",
    ),
    "literal_error": ("应为以下之一：{expected}", "must be one of {expected}"),
    "enum": ("应为以下之一：{expected}", "must be one of {expected}"),
    "dict_type": ("应为 JSON 对象", "must be a JSON object"),
    "model_type": ("应为 JSON 对象", "must be a JSON object"),
    "model_attributes_type": ("应为 JSON 对象", "must be a JSON object"),
    "list_type": ("应为列表", "must be a list"),
    "too_short": ("至少需要 {min_length} 项", "needs at least {min_length} entries"),
    "too_long": ("最多 {max_length} 项", "may have at most {max_length} entries"),
    "json_invalid": ("不是有效的 JSON", "is not valid JSON"),
    "control": (
        "含有控制字符（如 NUL 或换行），请删除", "holds a control character (such as NUL or a line break); remove it",
    ),
    # Any other kind: pydantic's own words, which are English; rare, and better than nothing.
    "other": ("不符合要求（{detail}）", "is not accepted ({detail})"),
}

# Words that code passes as values (state="closed") and the reader sees in their language. A value
# not listed here is shown as it is (a field named by its place in the request: "body.title").
TERMS: dict[str, dict[str, tuple[str, str]]] = {
    "state": {"draft": ("未开始", "not started"), "open": ("进行中", "open"), "closed": ("已结束", "closed"),
              "voided": ("已作废", "voided")},
    "action": {"open": ("开启", "opened"), "close": ("结束", "closed"), "reopen": ("重新开启", "reopened"),
               "void": ("作废", "voided")},
    "field": {
        "code": ("单位编码", "The unit code"),
        "name": ("名称", "The name"),
        "unit_code": ("单位", "The unit"),
        "unit_name": ("单位名称", "The unit name"),
        "year": ("年度", "The year"),
        "date": ("日期", "The date"),
        "title": ("标题", "The title"),
        "mode": ("投票方式", "The voting mode"),
        "attendance": ("应到人数", "The declared attendance"),
        "trim": ("去掉最高最低分个数", "The number of totals trimmed"),
        "component_weight": ("现场测评权重", "The on-site share"),
        "flagged_rule": ("雷同票规则", "The rule for uniform ballots"),
        "key": ("类别编号", "The group key"),
        "weight": ("权重", "The weight"),
        "group": ("评议人类别", "The rater group"),
        "comment": ("意见建议", "The comment"),
        "reason": ("理由", "The reason"),
        "username": ("用户名", "The username"),
        "display_name": ("姓名", "The name"),
        "api_key_name": ("API 密钥名称", "The API key's name"),
        "category": ("单位类别", "The category"),
        "template": ("模板", "The template"),
        "url": ("网址", "The address"),
        "secret": ("签名密钥", "The signing secret"),
    },
}

# Several problems are joined with a semicolon; a Listing of names with the language's list comma.
PROBLEM_SEPARATOR: dict[Lang, str] = {"zh": "；", "en": "; "}
LIST_SEPARATOR: dict[Lang, str] = {"zh": "、", "en": ", "}


@dataclass(frozen=True)
class Problem:
    """One thing to say to a person: a catalogue key and the values it names."""

    code: str
    params: dict[str, Any] = field(default_factory=dict)

    def message(self, lang: str = DEFAULT_LANG) -> str:
        return render(self.code, lang, self.params)


def render(key: str, lang: str = DEFAULT_LANG, params: Mapping[str, Any] | None = None) -> str:
    """The catalogue's text for ``key`` in ``lang`` (Chinese unless "en"), its placeholders filled."""
    zh, en = MESSAGES[key] if key in MESSAGES else REASONS[key.removeprefix("reason:")]
    text = en if lang == "en" else zh
    if not params:
        return text
    return text.format(**{name: _word(name, value, lang) for name, value in params.items()})


def reason(kind: str, params: Mapping[str, Any] | None = None) -> Problem:
    """A REASONS entry as a Problem that renders in either language."""
    return Problem(f"reason:{kind if kind in REASONS else 'other'}", dict(params or {}))


class Listing(tuple[str, ...]):
    """Names to be listed in the reader's way: "甲、乙" or "a, b". (Any other list a user sent, such
    as a wrong answer, is shown as it came.)"""


def _word(name: str, value: Any, lang: str) -> Any:
    key: Lang = "en" if lang == "en" else "zh"
    if isinstance(value, Problem):
        return value.message(lang)
    if isinstance(value, Listing):
        return LIST_SEPARATOR[key].join(value)
    if isinstance(value, (list, tuple)) and value and all(isinstance(item, Problem) for item in value):
        return PROBLEM_SEPARATOR[key].join(item.message(lang) for item in value)
    terms = TERMS.get(name)
    if terms is not None and isinstance(value, str) and value in terms:
        zh, en = terms[value]
        return en if lang == "en" else zh
    return value
