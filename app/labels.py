"""How the console names things in Chinese: who acted, what an audit event's details say, a short
verification code for a digest. Pure: the routes hand in the names they read from the store."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Actors that are not a person or an API key.
SYSTEM_ACTORS = {"system:cli": "服务器命令行", "system:seed": "系统（首次启动）", "system": "系统"}
# An audit event's detail keys, in the words of the console.
DETAIL_LABELS = {
    "count": "张数", "group": "评议人类别", "reason": "理由", "version": "结果版本", "ballots": "票数",
    "digest": "核验码", "code": "单位编码", "name": "名称", "category": "类别", "title": "标题", "unit": "单位",
    "before": "修改前", "after": "修改后", "created": "新增", "updated": "更新", "years": "往年测评",
    "username": "用户名", "role": "角色", "categories": "分管类别", "active": "启用", "id": "编号",
    "url": "地址", "events": "事件", "delivery": "投递", "scopes": "权限",
}
# The first 12 hex digits of a SHA-256 digest, in groups of four: enough to tell two results apart
# by eye on paper, and short enough to read out; the full digest stays in the API and exports.
CHECK_DIGITS = 12


def verification_code(digest: str) -> str:
    head = digest[:CHECK_DIGITS].upper()
    return "-".join(head[i : i + 4] for i in range(0, len(head), 4))


def actor_label(actor: str, display_names: Mapping[str, str]) -> str:
    """"user:wang" -> "王主任（wang）"; "api:main" -> "API 密钥“main”"; system actors in words."""
    kind, _, name = actor.partition(":")
    if actor in SYSTEM_ACTORS:
        return SYSTEM_ACTORS[actor]
    if kind == "user":
        shown = display_names.get(name)
        return f"{shown}（{name}）" if shown and shown != name else name
    if kind == "api":
        return f"API 密钥“{name}”"
    return actor


def _value(key: str, value: Any, names: Mapping[str, str]) -> str:
    if value is None:
        return "不区分类别" if key == "group" else "—"
    if isinstance(value, bool):
        return "是" if value else "否"
    if key == "version":
        return f"第 {value} 版"
    if key == "digest" and isinstance(value, str):
        return verification_code(value)
    if isinstance(value, Mapping):
        return "，".join(f"{DETAIL_LABELS.get(k, k)} {_value(k, v, names)}" for k, v in value.items())
    if isinstance(value, list):
        return "、".join(_value(key, v, names) for v in value)
    text = str(value)
    return names.get(text, text) if key in ("group", "category", "categories") else text


def detail_text(detail: Mapping[str, Any], names: Mapping[str, str]) -> str:
    """An audit event's details as a line of Chinese: "张数 10；评议人类别 党员群众代表".

    ``names`` turns keys (rater groups, categories) into the names people gave them."""
    return "；".join(f"{DETAIL_LABELS.get(key, key)} {_value(key, value, names)}" for key, value in detail.items())
