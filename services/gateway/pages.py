"""Web pages for people without an app: server-rendered shells (Jinja2)
whose one script (``static/app.js``) calls the same JSON API as the apps —
nothing here talks to a back-end service except through those endpoints.
Chinese first; ``?lang=en`` switches (remembered in a cookie). Mixed into
``GatewayService``.

Every page answer carries a Content-Security-Policy without inline script,
``frame-ancestors 'none'``, and ``Referrer-Policy: no-referrer`` (a share
link in the address bar must not leak to anything the page loads or links
to). Pages are not in the OpenAPI document: they are not an API."""

import io
import json
import mimetypes
import re
from pathlib import Path

import segno
from jinja2 import Environment, FileSystemLoader, select_autoescape
from werkzeug.wrappers import Response

from services.common.plumbing.context import current_request_id
from services.gateway.auth import SESSION_COOKIE
from services.gateway.http import ApiHandler, ErrorRenderer, register_renderer
from services.gateway.messages import message_for
from services.gateway.web import WebCookies

__all__ = ["PageEndpoints", "render_html_error", "wants_html"]

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
ENV = Environment(
    loader=FileSystemLoader(str(HERE / "templates")),
    autoescape=select_autoescape(("html",)),
    trim_blocks=True,
    lstrip_blocks=True,
)
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; "
        "img-src 'self' data:; connect-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
SHARE_TOKEN = re.compile(r"^[A-Za-z0-9_-]{20,200}$")
SCHOOL_CODE = re.compile(r"^[A-Za-z0-9]{2,32}$")

# What the script says by itself (everything else comes from the API's own
# zh/en messages for a code).
SCRIPT_MESSAGES = {
    "failed": (
        "请求未能完成，请稍后重试",
        "The request could not be completed; retry.",
    ),
    "check_field": ("请检查此项", "Please check this field."),
    "resend_in": ("{n} 秒后可重发", "Resend in {n}s"),
    "code_sent": ("验证码已发送至", "Code sent to"),
    "copied": ("已复制", "Copied"),
    "yes": ("是", "yes"),
    "no": ("否", "no"),
    "empty": ("暂无", "Nothing here yet"),
    "answer_yes": ("同意", "Yes"),
    "answer_no": ("拒绝", "No"),
    "approve": ("通过", "Approve"),
    "reject": ("驳回", "Reject"),
    "approved": ("已同意", "approved"),
    "declined": ("已拒绝", "declined"),
    "mark_read": ("标为已读", "Mark read"),
    "refresh": ("重新核验", "Check again"),
    "link": ("手动关联", "Link"),
    "reason": ("理由", "Reason"),
    "photo_alt": ("手持证件照片", "Photo holding the ID card"),
    "changeable": ("可修改", "changeable"),
    "locked": ("已锁定", "locked"),
    "unlocks_at": ("解锁时间", "unlocks at"),
    "method_sms": ("短信验证码", "SMS code to"),
    "method_email": ("邮箱验证码", "Email code to"),
    "method_questions": ("密保问题", "Security questions"),
    "kind_phone": ("手机号", "Phone"),
    "kind_email": ("邮箱", "Email"),
    "kind_id_number": ("证件号", "ID number"),
    "kind_passport_id": ("通行证ID", "Passport ID"),
    "kind_assistance_request": ("证件重复协助请求", "Duplicate-ID assistance request"),
    "kind_assistance_outcome": ("协助结果", "Assistance outcome"),
    "kind_review_outcome": ("审核结果", "Review outcome"),
    "kind_correction_outcome": ("学籍更正申请结果", "Registry correction outcome"),
    "kind_duplicate_move": ("证件号转移", "ID number move"),
    "kind_duplicate_dispute": ("证件号转移异议", "Disputed ID number move"),
    "value_holding": ("等待异议期结束", "waiting out the dispute window"),
    "value_applied": ("已生效", "took effect"),
    "value_disputed": ("已提出异议，等待人工审核", "disputed, a reviewer decides"),
    "kind_vouch_request": ("忘记手机号助力请求", "Request to vouch (lost phone)"),
    "kind_phone_recovery_outcome": ("忘记手机号找回已完成", "Phone recovery completed"),
    "kind_duplicate_photo": ("手持证件照审核", "ID photo review"),
    "kind_recovery_dispute": ("找回争议（不是本人）", "Disputed recovery (not me)"),
    "value_active": ("正常", "active"),
    "value_duplicate_pending": ("证件重复待处理", "duplicate ID pending"),
    "value_pending": ("待核验", "pending"),
    "value_passed": ("已通过", "passed"),
    "value_failed": ("未通过", "failed"),
    "value_unverified": ("未核验", "not verified"),
    "value_open": ("审核中", "in review"),
    "value_approved": ("已通过", "approved"),
    "value_rejected": ("已驳回", "rejected"),
    "value_matched": ("待设置新手机号", "waiting for the new phone"),
    "value_awaiting_vouches": ("等待同学助力", "waiting for vouches"),
    "value_completed": ("已完成", "completed"),
    "value_cancelled": ("已取消", "cancelled"),
    "value_expired": ("已过期", "expired"),
    "value_reverted": ("已撤销", "undone"),
    "field_school_code": ("学校", "School"),
    "field_student_number": ("学号", "Student number"),
    "field_name": ("姓名", "Name"),
    "field_department": ("院系", "Department"),
    "field_enrollment_year": ("入学年份", "Enrollment year"),
    "lock_school_arranged_course": (
        "本学期有学校统一安排的学分课",
        "a school-arranged credit course this term",
    ),
    "lock_free_elective_course": (
        "有未完成的自选课",
        "an unfinished free-elective course",
    ),
    "unmet_wallet_balance": ("知点余额未清零", "virtual currency left"),
    "unmet_credit_course_unfinished": (
        "有未完成的学分课",
        "an unfinished credit course",
    ),
    "unmet_grades_unpublished": ("成绩尚未公布", "grades not yet published"),
    "unmet_makeup_pending": ("补考尚未结束", "a make-up exam pending"),
    "unmet_courses_owned": ("名下仍有课程", "courses owned"),
    "code_school_not_onboarded": ("学校尚未接入", "school not onboarded"),
    "code_school_not_synced": ("学校尚未同步学籍", "the school has not synced"),
    "code_not_in_registry": ("学籍中无此学号", "not in the registry"),
    "code_name_mismatch": ("姓名不一致", "name differs"),
    "code_class_name_mismatch": ("班级不一致", "class differs"),
    "code_id_number_mismatch": ("证件号不一致", "ID number differs"),
    "code_record_inactive": ("学籍已不在读", "record inactive"),
    "code_record_claimed": (
        "学籍已被其他账号核验：如果这是你的学籍，请走“身份证号重复”流程",
        "record used by another account: if it is yours, use the duplicate-ID path",
    ),
    "code_birth_date_mismatch": ("出生日期不一致", "birth date differs"),
    "code_id_document_unverifiable": (
        "你的证件无法单独核验，请联系学校手动关联",
        "your ID document cannot prove this alone: ask your school to link you",
    ),
    "reason_self": ("不能为自己助力", "you cannot vouch for yourself"),
    "reason_already_vouched": ("你已助力过", "you already vouched"),
    "reason_other_class": ("不是同班同学", "not the same class"),
    "reason_other_school": ("不是同校同学", "not the same school"),
    "reason_voucher_not_verified": (
        "你尚未通过学籍核验",
        "you are not registry-verified",
    ),
    "reason_requester_not_verified": (
        "对方未通过学籍核验",
        "they are not registry-verified",
    ),
    "reason_recently_created": ("你的账号注册时间太短", "your account is too new"),
    "reason_recently_verified": (
        "你的学籍核验时间太短",
        "your verification is too recent",
    ),
    "reason_daily_cap": ("你今天助力次数已满", "you reached today's vouches"),
    "reason_term_cap": ("你本学期助力次数已满", "you reached this term's vouches"),
}


def tr_for(lang):
    def tr(zh, en):
        return en if lang == "en" else zh

    return tr


def page_language(request):
    """``?lang=`` first (and remembered), then the cookie; Chinese by default."""
    asked = request.args.get("lang")
    if asked in ("zh", "en"):
        return asked, True
    return ("en" if request.cookies.get("lang") == "en" else "zh"), False


def wants_html(request):
    accept = request.headers.get("Accept") or ""
    return "text/html" in accept and not request.path.startswith(("/api/", "/scim/"))


def _html(status, text, request, config, lang=None, remember=False):
    response = Response(text, status=status, content_type="text/html; charset=utf-8")
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    cookies = WebCookies(config or {})
    cookies.ensure_device(request, response)
    if remember and lang:
        response.set_cookie("lang", lang, max_age=365 * 24 * 3600, path="/",
                            samesite="Lax", secure=cookies.secure)  # fmt: skip
    return response


def render(template, request, config, status=200, **context):
    lang, remember = page_language(request)
    tr = tr_for(lang)
    messages = {key: tr(*pair) for key, pair in SCRIPT_MESSAGES.items()}
    text = ENV.get_template(template).render(
        lang=lang,
        tr=tr,
        page=template.removesuffix(".html"),
        messages_json=json.dumps(messages, ensure_ascii=False),
        signed_in=bool(request.cookies.get(SESSION_COOKIE)),
        request_id=current_request_id() or "",
        **context,
    )
    return _html(status, text, request, config, lang, remember)


def render_html_error(request, status, code, config=None, request_id=None):
    """The 404 / error page (with the request id to quote)."""
    lang, _ = page_language(request)
    tr = tr_for(lang)
    zh, en = message_for(code)
    headings = {404: ("页面不存在", "Page not found")}
    heading = tr(*headings.get(status, ("出错了", "Something went wrong")))
    text = ENV.get_template("error.html").render(
        lang=lang,
        tr=tr,
        page="error",
        messages_json="{}",
        signed_in=bool(request.cookies.get(SESSION_COOKIE)),
        request_id=request_id or current_request_id() or "",
        status=status,
        heading=heading,
        detail=tr(zh, en),
    )
    return _html(status, text, request, config)


class HtmlPages(ErrorRenderer):
    """Pages answer refusals with the error page, never JSON; a browser
    asking for a page no route has gets the 404 page."""

    media_type = "text/html"

    def render(self, status, code, request, extra=None, config=None, request_id=None):
        return render_html_error(request, status, code, config, request_id)

    def claims(self, request):
        return wants_html(request)


HTML_PAGES = register_renderer(HtmlPages())


def page(path):
    """A GET page route: its own error page (never JSON) and the page headers."""

    def decorator(fn):
        route = re.sub(r"\{(\w+)\}", r"<\1>", path)
        return ApiHandler.decorator("GET", route, renderer=HTML_PAGES)(fn)

    return decorator


def _needs_session(request):
    """A page that needs a signed-in browser sends others to log in first."""
    if request.cookies.get(SESSION_COOKIE):
        return None
    response = Response(status=302)
    response.headers["Location"] = f"/login?next={request.path}"
    return response


class PageEndpoints:
    """Needs ``config`` of the gateway."""

    @page("/")
    def home_page(self, request):
        return render("home.html", request, self.config)

    @page("/login")
    def login_page(self, request):
        return render("login.html", request, self.config)

    @page("/register")
    def register_page(self, request):
        return render("register.html", request, self.config)

    @page("/register/student")
    def register_student_page(self, request):
        return render("register_student.html", request, self.config)

    @page("/username")
    def username_page(self, request):
        return render("username.html", request, self.config)

    @page("/reset-password")
    def reset_page(self, request):
        return render("reset.html", request, self.config)

    @page("/forgot-phone")
    def forgot_phone_page(self, request):
        return render(
            "forgot_phone.html", request, self.config, resume="resume" in request.args
        )

    @page("/duplicate-id/not-me/{token}")
    def id_not_me_page(self, request, token):
        if not SHARE_TOKEN.match(token):
            return render_html_error(request, 404, "share_link_invalid", self.config)
        return render("id_not_me.html", request, self.config, token=token)

    @page("/not-me/{token}")
    def not_me_page(self, request, token):
        if not SHARE_TOKEN.match(token):
            return render_html_error(request, 404, "share_link_invalid", self.config)
        return render("not_me.html", request, self.config, token=token)

    @page("/v/{share_token}")
    def vouch_page(self, request, share_token):
        if not SHARE_TOKEN.match(share_token):
            return render_html_error(request, 404, "share_link_invalid", self.config)
        return _needs_session(request) or render(
            "vouch.html", request, self.config, share_token=share_token
        )

    @page("/account")
    def account_page(self, request):
        return _needs_session(request) or render("account.html", request, self.config)

    @page("/registry")
    def registry_page(self, request):
        return _needs_session(request) or render("registry.html", request, self.config)

    @page("/duplicate-id")
    def duplicate_page(self, request):
        return _needs_session(request) or render("duplicate.html", request, self.config)

    @page("/inbox")
    def inbox_page(self, request):
        return _needs_session(request) or render("inbox.html", request, self.config)

    @page("/admin/schools/{code}/unmatched")
    def unmatched_page(self, request, code):
        if not SCHOOL_CODE.match(code):
            return render_html_error(request, 404, "school_not_found", self.config)
        return _needs_session(request) or render(
            "admin_unmatched.html", request, self.config, school_code=code.upper()
        )

    @page("/admin/reviews")
    def reviews_page(self, request):
        return _needs_session(request) or render(
            "admin_reviews.html", request, self.config
        )

    @page("/web/qr.svg")
    def share_qr(self, request):
        """The QR code of a link of this platform (segno, as SVG)."""
        data = request.args.get("data", "")
        base = self.config.get("PUBLIC_BASE_URL", "").rstrip("/")
        own = data.startswith(base + "/") if base else data.startswith(request.host_url)
        if not own or len(data) > 512:
            return render_html_error(request, 404, "not_found", self.config)
        out = io.BytesIO()
        # A standalone SVG (with its namespace): what an <img> can show.
        segno.make(data, error="m").save(out, kind="svg", scale=4, border=2)
        response = Response(out.getvalue(), content_type="image/svg+xml")
        response.headers.update(SECURITY_HEADERS)
        return response

    @page("/static/{name}")
    def static_file(self, request, name):
        path = (STATIC / name).resolve()
        if path.parent != STATIC or not path.is_file():
            return render_html_error(request, 404, "not_found", self.config)
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        response = Response(path.read_bytes(), content_type=f"{kind}; charset=utf-8")
        response.headers["Cache-Control"] = "public, max-age=300"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response
