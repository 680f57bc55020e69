"""Every word the phone pages, the projector screen and the card sheet show. Pure.

Simplified Chinese is the default; English when the rater asks for it (``?lang=en``) or the
browser prefers it. Domain errors keep their own catalogue in app.errors; the phone pages say
those problems again here in shorter words, next to the point they concern.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

Lang = Literal["zh", "en"]
LANGS: tuple[Lang, ...] = ("zh", "en")
DEFAULT_LANG: Lang = "zh"

# key -> (Chinese, English). Placeholders are filled by name.
MESSAGES: dict[str, tuple[str, str]] = {
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
    "send_timeout": (
        "服务器 {seconds} 秒内没有回应，本票可能还没有计入。您的打分已保存在本机，请点“重新提交”；"
        "如果其实已经计入，会显示“已经计入”，不会重复计票。",
        "No answer from the server within {seconds} seconds, so the ballot may not be counted yet. Your"
        " answers are kept on this phone: press “Send again”. If it was counted after all, you will see"
        " “already counted”; it is never counted twice.",
    ),
    "send_closed": (
        "评议会已经结束，不再接受投票，本票没有计入。",
        "The meeting has closed and takes no more ballots; this ballot was not counted.",
    ),
    # the review before the final submit, as paper lets a rater look over the sheet
    "review_title": ("提交前请核对", "Check before you submit"),
    "review_note": (
        "下面是您对 {count} 个要点的打分。要修改，点“返回修改”或点某一项。",
        "These are your answers to the {count} points. To change one, press “Back to change” or the point.",
    ),
    "review_comment": ("意见建议：已填写", "Comments: written"),
    "review_confirm": ("确认提交", "Submit now"),
    "review_back": ("返回修改", "Back to change"),
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
    # after submitting
    "thanks_title": ("已计入", "Counted"),
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
    "error_title": ("服务器出错了", "The server ran into an error"),
    "error_body": (
        "请稍后再试；您在本机打过的分仍然保存着。如果一直出错，请把错误编号 {error_id} 告诉工作人员。",
        "Please try again in a moment; the answers on this phone are still kept. If it keeps happening, give"
        " the staff the error number {error_id}.",
    ),
    "disk_full_body": (
        "服务器磁盘已满，刚才的操作没有保存；您在本机打过的分仍然保存着。请告诉工作人员，稍后再试。",
        "The server's disk is full, so nothing was saved; the answers on this phone are still kept. Please"
        " tell the staff, and try again later.",
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
    "screen_taken": ("已领取", "Codes taken"),
    "screen_counted": ("已投票", "Ballots counted"),
    "screen_attendance": ("应到人数", "Attendance"),
    "screen_live": ("实时更新", "Live"),
    "screen_reconnecting": ("连接中断，正在重新连接……", "Connection lost; reconnecting…"),
    "state_draft": ("尚未开始投票", "Voting has not started"),
    "state_open": ("投票进行中", "Voting is open"),
    "state_closed": ("投票已结束", "Voting has closed"),
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


def message(key: str, lang: Lang = DEFAULT_LANG, **params: Any) -> str:
    zh, en = MESSAGES[key]
    text = en if lang == "en" else zh
    return text.format(**params) if params else text


def translator(lang: Lang) -> Callable[..., str]:
    """``t(key, **params)`` bound to one language, as the templates call it."""

    def t(key: str, **params: Any) -> str:
        return message(key, lang, **params)

    return t


def from_query(value: str | None) -> Lang | None:
    """The language a ``?lang=`` parameter names, if it names one we have."""
    if value is None:
        return None
    value = value.strip().lower()
    for lang in LANGS:
        if value == lang or value.startswith(lang + "-"):
            return lang
    return None


def from_accept_language(header: str | None) -> Lang:
    """The best of our languages for an Accept-Language header: highest q wins, then earlier."""
    best: tuple[float, int, Lang] | None = None
    for position, part in enumerate((header or "").split(",")):
        tag, _, params = part.strip().partition(";")
        lang = from_query(tag)
        if lang is None:
            continue
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if not 0 < quality <= 1:  # also refuses nan
            continue
        if best is None or quality > best[0]:
            best = (quality, position, lang)
    return best[2] if best else DEFAULT_LANG


def choose(query: str | None, accept_language: str | None) -> Lang:
    """An explicit ``?lang=`` first, then the browser's preference, then Chinese."""
    return from_query(query) or from_accept_language(accept_language)
