"""Delivery adapters and the sealing of queued messages.

* ``SmtpMailer`` — email over SMTP (smtplib; STARTTLS and auth optional).
* ``HttpSmsGateway`` — SMS through any HTTP gateway taking a JSON body built
  from a template (``$to``, ``$body``, ``$code`` in string values) with an
  optional auth header, the way Ory Kratos' courier does.
* ``KannelSms`` — SMS through Kannel's ``sendsms`` (Kannel speaks SMPP to
  the operators); each message carries a ``dlr-url`` on which Kannel reports
  what the operator said about it (``receipts.py``).
* ``AliyunSms`` — Alibaba Cloud SMS ``SendSms`` (API version 2017-05-25,
  RPC style, HMAC-SHA1 signature version 1.0), from Alibaba Cloud's public
  API documentation; its ``OutId`` names the delivery its SmsReport
  receipts come back for.

Each ``send(message, receipt=None)`` returns the provider's id or raises
``ProviderRefused`` (``permanent`` when retrying cannot help). A provider
whose ``receipts`` is true is given ``receipt = (delivery_id, signature)``
and leaves the delivery ``submitted`` until its receipt comes.
"""

import base64
import hashlib
import hmac
import json
import smtplib
import uuid
from datetime import datetime, timezone
from email.message import EmailMessage
from string import Template
from urllib.parse import quote

import requests
import urllib3

__all__ = [
    "ProviderRefused",
    "SmtpMailer",
    "HttpSmsGateway",
    "KannelSms",
    "AliyunSms",
    "aliyun_signature",
    "build_providers",
]


class ProviderRefused(Exception):
    """The provider did not take the message. ``detail`` is safe to log."""

    def __init__(self, detail, permanent=False):
        super().__init__(detail)
        self.detail = detail
        self.permanent = permanent


class SmtpMailer:
    name = "smtp"
    receipts = False

    def __init__(
        self,
        host,
        port,
        sender,
        starttls=False,
        username=None,
        password=None,
        timeout=10,
    ):
        self.host, self.port, self.sender = host, int(port), sender
        self.starttls, self.username, self.password = starttls, username, password
        self.timeout = timeout

    def send(self, message, receipt=None):
        email = EmailMessage()
        email["From"] = self.sender
        email["To"] = message["to"]
        email["Subject"] = message.get("subject") or "验证码 / Verification code"
        email.set_content(message["body"])
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls()
                if self.username:
                    smtp.login(self.username, self.password or "")
                refused = smtp.send_message(email)
        except smtplib.SMTPRecipientsRefused:
            raise ProviderRefused("smtp recipient refused", permanent=True) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise ProviderRefused(f"smtp {type(exc).__name__}") from None
        if refused:
            raise ProviderRefused("smtp recipient refused", permanent=True)
        return None


class HttpSmsGateway:
    """Posts JSON to an SMS gateway. urllib3 directly (not requests): this is
    the hottest call of the delivery queue and requests' per-call overhead
    was a fifth of the service's CPU under load."""

    name = "http_sms"
    receipts = False

    def __init__(self, url, body_template=None, auth_header=None, timeout=10):
        self.url = url
        self.body_template = body_template or {"to": "$to", "body": "$body"}
        self.headers = {"Content-Type": "application/json; charset=utf-8"}
        if auth_header:
            name, _, value = auth_header.partition(":")
            self.headers[name.strip()] = value.strip()
        self.http = urllib3.PoolManager(timeout=timeout, retries=False, maxsize=10)

    def _render(self, value, fields):
        if isinstance(value, str):
            return Template(value).safe_substitute(fields)
        if isinstance(value, dict):
            return {k: self._render(v, fields) for k, v in value.items()}
        if isinstance(value, list):
            return [self._render(v, fields) for v in value]
        return value

    def send(self, message, receipt=None):
        body = self._render(
            self.body_template,
            # Notices carry no code: ``$code`` renders empty for them.
            {
                "to": message["to"],
                "body": message["body"],
                "code": message.get("code", ""),
            },
        )
        try:
            answer = self.http.request(
                "POST",
                self.url,
                body=json.dumps(body, ensure_ascii=False).encode(),
                headers=self.headers,
            )
        except urllib3.exceptions.HTTPError as exc:
            raise ProviderRefused(f"http {type(exc).__name__}") from None
        status = answer.status
        if 400 <= status < 500 and status not in (408, 429):
            raise ProviderRefused(f"http {status}", permanent=True)
        if status >= 300:
            raise ProviderRefused(f"http {status}")
        return None


# Kannel's sendsms answers (smsbox's "%d: text" lines): which are worth a retry.
_KANNEL_PERMANENT_STATUSES = frozenset({400, 403, 404, 413})


class KannelSms:
    """Kannel's HTTP ``sendsms``: 202 ``0: Accepted for delivery`` or ``3:
    Queued for later delivery`` (bearerbox keeps it in its spool while the
    SMSC is away); 4xx for a request it will never take; 503 when it cannot
    queue. UCS-2 so Chinese text arrives intact; up to three concatenated
    parts (``max-messages`` in its sendsms-user)."""

    name = "kannel"
    receipts = True
    # 1 delivered to the phone, 2 not delivered, 8 taken by the SMSC,
    # 16 refused by the SMSC: every report but "buffered" (4).
    DLR_MASK = 1 | 2 | 8 | 16

    def __init__(self, sendsms_url, username, password, receipt_url, timeout=10):
        self.url = sendsms_url
        self.credentials = {"username": username, "password": password}
        self.receipt_url = receipt_url
        self.http = urllib3.PoolManager(timeout=timeout, retries=False, maxsize=10)

    def dlr_url(self, delivery_id, signature):
        # %d and %A are Kannel's: the report type and the SMSC's receipt text.
        separator = "&" if "?" in self.receipt_url else "?"
        return (
            f"{self.receipt_url}{separator}delivery={int(delivery_id)}"
            f"&sig={signature}&type=%d&report=%A"
        )

    def request_fields(self, message, receipt=None):
        fields = {
            **self.credentials,
            "to": message["to"],
            "text": message["body"],
            "charset": "UTF-8",
            "coding": "2",
        }
        if receipt is not None:
            fields["dlr-mask"] = str(self.DLR_MASK)
            fields["dlr-url"] = self.dlr_url(*receipt)
        return fields

    def send(self, message, receipt=None):
        try:
            answer = self.http.request(
                "GET", self.url, fields=self.request_fields(message, receipt)
            )
        except urllib3.exceptions.HTTPError as exc:
            raise ProviderRefused(f"kannel {type(exc).__name__}") from None
        if answer.status in (200, 202):
            return None
        permanent = answer.status in _KANNEL_PERMANENT_STATUSES
        raise ProviderRefused(f"kannel http {answer.status}", permanent=permanent)


def _percent_encode(value):
    # Alibaba's POP signature: RFC 3986 unreserved characters stay, space is %20.
    return quote(str(value), safe="~")


def aliyun_signature(params, secret, method="GET"):
    """Signature v1.0 of Alibaba Cloud's RPC-style APIs (HMAC-SHA1)."""
    canonical = "&".join(
        f"{_percent_encode(k)}={_percent_encode(v)}" for k, v in sorted(params.items())
    )
    string_to_sign = f"{method}&{_percent_encode('/')}&{_percent_encode(canonical)}"
    digest = hmac.new(f"{secret}&".encode(), string_to_sign.encode(), hashlib.sha1)
    return base64.b64encode(digest.digest()).decode()


# Alibaba error codes after which a retry cannot succeed.
_ALIYUN_PERMANENT = {
    "isv.MOBILE_NUMBER_ILLEGAL",
    "isv.INVALID_PARAMETERS",
    "isv.SMS_SIGNATURE_ILLEGAL",
    "isv.SMS_TEMPLATE_ILLEGAL",
    "isv.BLACK_KEY_CONTROL_LIMIT",
    "isv.TEMPLATE_MISSING_PARAMETERS",
}


class AliyunSms:
    name = "aliyun_sms"

    def __init__(
        self,
        endpoint,
        access_key_id,
        access_key_secret,
        sign_name,
        template_code,
        region="cn-hangzhou",
        timeout=10,
        notice_template_code=None,
        receipts=False,
    ):
        # Receipts need the SmsReport push set up in Alibaba's console
        # (ALIYUN_RECEIPTS): without it a delivery stays "sent".
        self.receipts = receipts
        self.endpoint = endpoint.rstrip("/") + "/"
        self.access_key_id, self.secret = access_key_id, access_key_secret
        self.sign_name, self.template_code = sign_name, template_code
        # Alibaba sends only pre-approved templates: notices have their own,
        # filled with the notice's kind and masked parameters.
        self.notice_template_code = notice_template_code
        self.region, self.timeout = region, timeout
        self.session = requests.Session()

    def request_params(
        self,
        phone,
        code,
        now=None,
        nonce=None,
        template_code=None,
        template_param=None,
        out_id=None,
    ):
        now = now or datetime.now(timezone.utc)
        if template_param is None:
            template_param = {"code": code}
        params = {
            "AccessKeyId": self.access_key_id,
            "Action": "SendSms",
            "Format": "JSON",
            "PhoneNumbers": phone[3:] if phone.startswith("+86") else phone,
            "RegionId": self.region,
            "SignName": self.sign_name,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": nonce or uuid.uuid4().hex,
            "SignatureVersion": "1.0",
            "TemplateCode": template_code or self.template_code,
            "TemplateParam": json.dumps(
                template_param, separators=(",", ":"), ensure_ascii=False
            ),
            "Timestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Version": "2017-05-25",
        }
        if out_id is not None:
            params["OutId"] = str(out_id)
        params["Signature"] = aliyun_signature(params, self.secret)
        return params

    def send(self, message, receipt=None):
        out_id = receipt[0] if receipt is not None else None
        if "code" in message:
            params = self.request_params(message["to"], message["code"], out_id=out_id)
        elif self.notice_template_code:
            params = self.request_params(
                message["to"],
                None,
                template_code=self.notice_template_code,
                template_param={"kind": message.get("kind", "")}
                | dict(message.get("params") or {}),
                out_id=out_id,
            )
        else:
            raise ProviderRefused("aliyun notice template not set", permanent=True)
        try:
            answer = self.session.get(
                self.endpoint, params=params, timeout=self.timeout
            )
            result = answer.json()
        except (requests.RequestException, ValueError) as exc:
            raise ProviderRefused(f"aliyun {type(exc).__name__}") from None
        code = result.get("Code")
        if code == "OK":
            return result.get("BizId")
        raise ProviderRefused(f"aliyun {code}", permanent=code in _ALIYUN_PERMANENT)


def build_providers(config):
    """``{"sms": adapter, "email": adapter}`` from the service config."""
    sms_kind = config.get("SMS_PROVIDER", "http")
    if sms_kind == "aliyun":
        sms = AliyunSms(
            config["ALIYUN_SMS_ENDPOINT"],
            config["ALIYUN_ACCESS_KEY_ID"],
            config["ALIYUN_ACCESS_KEY_SECRET"],
            config["ALIYUN_SIGN_NAME"],
            config["ALIYUN_TEMPLATE_CODE"],
            notice_template_code=config.get("ALIYUN_NOTICE_TEMPLATE_CODE") or None,
            receipts=bool(config.get("ALIYUN_RECEIPTS", False)),
        )
    elif sms_kind == "kannel":
        sms = KannelSms(
            config["KANNEL_SENDSMS_URL"],
            config["KANNEL_USERNAME"],
            config["KANNEL_PASSWORD"],
            config["SMS_RECEIPT_URL"],
        )
    elif sms_kind == "http":
        template = config.get("SMS_HTTP_BODY")
        if isinstance(template, str):
            template = json.loads(template)
        sms = HttpSmsGateway(
            config["SMS_HTTP_URL"], template, config.get("SMS_HTTP_AUTH_HEADER") or None
        )
    else:
        raise ValueError(f"unknown SMS_PROVIDER {sms_kind!r}")
    email = SmtpMailer(
        config.get("SMTP_HOST", "127.0.0.1"),
        config.get("SMTP_PORT", 1025),
        config.get("MAIL_FROM", "no-reply@selfservice.local"),
        starttls=bool(config.get("SMTP_STARTTLS", False)),
        username=config.get("SMTP_USERNAME") or None,
        password=config.get("SMTP_PASSWORD") or None,
    )
    return {"sms": sms, "email": email}
