"""The zh/en message of every refusal code, for the surfaces that render
refusals (problem+json, SCIM errors, HTML pages). Codes are the contract
(``services.common.contract.errors``); the words live here, with the gateway
that shows them. Pure."""

__layer__ = "pure"  # no framework, no I/O: tests/unit/test_layering.py

__all__ = ["MESSAGES", "message_for"]

# code -> (Chinese, English). One catalogue so clients see the same text for
# the same code whichever service refused.
MESSAGES = {
    "invalid_request": ("请求格式不正确", "The request is malformed."),
    "not_found": ("未找到", "Not found."),
    "internal_error": (
        "服务内部错误，请稍后重试",
        "Internal error; please retry later.",
    ),
    "service_unavailable": (
        "服务暂不可用，请稍后重试",
        "A service is unavailable; please retry later.",
    ),
    "deadline_exceeded": (
        "服务响应超时，请稍后重试",
        "A service did not answer in time; please retry.",
    ),
    "unauthenticated": ("请先登录", "Authentication is required."),
    "forbidden": ("无权执行此操作", "You are not allowed to do this."),
    "conflict": ("与当前状态冲突", "This conflicts with the current state."),
    "rule_violation": ("不符合规则", "This breaks a rule."),
    "too_frequent": (
        "不能频繁使用该功能，请稍后再试",
        "Too many requests; please wait and retry.",
    ),
    "method_not_allowed": ("不支持该请求方法", "Method not allowed."),
    "invalid_json": ("请求体不是有效的 JSON", "The request body is not valid JSON."),
    "database_busy": ("系统繁忙，请稍后重试", "The system is busy; please retry."),
    "database_unavailable": (
        "系统暂时不可用，请稍后重试",
        "The service's database is briefly unavailable; please retry.",
    ),
    # schools, roles (registry_sync, identity, gateway)
    "school_exists": ("该学校已接入", "A school with this code is already onboarded."),
    "school_not_found": ("未找到该学校", "No school with this code."),
    "invalid_school_token": ("学校接口凭证无效", "The school API token is not valid."),
    "role_invalid": ("不支持的角色", "Unknown role."),
    "role_needs_school": (
        "学校管理员角色需指定学校",
        "A school admin role names its school.",
    ),
    "role_has_no_school": (
        "该角色不属于某一学校",
        "This role is not scoped to a school.",
    ),
    "role_required": ("没有执行此操作的角色", "Your account lacks the role for this."),
    "not_your_school": ("只能管理本校", "You may act only for your own school."),
    "account_not_found": ("未找到该账号", "No such account."),
    "database_conflict": (
        "系统繁忙，请稍后重试",
        "Too many simultaneous changes; please retry.",
    ),
    # verification
    "phone_invalid": (
        "手机号格式不正确，请填写中国大陆手机号",
        "Not a valid mainland China mobile number.",
    ),
    "email_invalid": ("邮箱格式不正确", "Not a valid email address."),
    "destination_invalid": (
        "请填写中国大陆手机号或邮箱",
        "Give a mainland China mobile number or an email address.",
    ),
    "channel_invalid": ("不支持的发送方式", "Unknown channel."),
    "destination_channel_mismatch": (
        "短信只能发送到手机号，邮件只能发送到邮箱",
        "SMS goes to a mobile number and email to an address.",
    ),
    "resend_too_soon": (
        "验证码已发送，请稍后再获取",
        "A code was just sent; wait before asking again.",
    ),
    "daily_limit_reached": (
        "今日获取验证码次数已达上限（每日5次），请明天再试",
        "Daily code limit reached; try again tomorrow.",
    ),
    "ip_limit_reached": (
        "当前网络请求验证码过于频繁，请稍后再试",
        "Too many codes requested from this network; wait and retry.",
    ),
    "account_limit_reached": (
        "该账号今日获取验证码次数已达上限",
        "This account has asked for too many codes today.",
    ),
    "sending_suspended": (
        "短信发送暂时受限，请稍后再试",
        "Sending is suspended for a while; retry later.",
    ),
    "receipt_signature_invalid": (
        "回执签名无效",
        "The delivery receipt's signature is not valid.",
    ),
    "receipt_token_invalid": (
        "回执推送凭证无效",
        "The delivery receipt push token is not valid.",
    ),
    "code_not_found": ("未找到该验证码", "No such code."),
    "scim_sources_invalid": (
        "学号/证件号来源设置无效",
        "The student and ID number sources are not valid.",
    ),
    "suspension_not_found": ("未找到该暂停记录", "No such suspension."),
    "country_not_allowed": (
        "暂不支持向该国家或地区的手机号发送短信",
        "Codes cannot be sent by SMS to numbers of this country or region.",
    ),
    "captcha_required": ("请先完成图形验证码", "Solve the image captcha first."),
    "captcha_invalid": (
        "图形验证码错误或已失效",
        "The captcha answer is wrong or expired.",
    ),
    "code_invalid": ("验证码错误", "The code is wrong."),
    "code_expired": (
        "验证码已过期，请重新获取",
        "The code has expired; ask for a new one.",
    ),
    "code_used": (
        "验证码已使用，请重新获取",
        "The code was already used; ask for a new one.",
    ),
    # identity: real-name rules
    "id_type_invalid": ("不支持的证件类型", "Unknown ID document type."),
    "id_number_required": ("请填写证件号码", "The ID number is required."),
    "id_length_invalid": (
        "身份证号码应为18位（或旧版15位）",
        "A resident ID has 18 characters (or 15 for old cards).",
    ),
    "id_format_invalid": ("证件号码格式不正确", "The ID number has the wrong format."),
    "id_checksum_invalid": (
        "身份证号码校验位不正确，请核对",
        "The ID number's check character is wrong.",
    ),
    "id_birth_date_invalid": (
        "证件号码中的出生日期无效",
        "The birth date in the ID number is not a real date.",
    ),
    "id_birth_date_in_future": (
        "证件号码中的出生日期晚于今天",
        "The birth date in the ID number is in the future.",
    ),
    "id_permit_region_invalid": (
        "港澳台居民居住证号码应以810000、820000或830000开头",
        "HK/Macao/Taiwan residence permits start with 810000, 820000 or 830000.",
    ),
    "name_too_short": ("姓名至少2个字", "A name has at least 2 characters."),
    "name_too_long": ("姓名过长", "The name is too long."),
    "name_has_space": ("姓名中不能有空格", "A name has no spaces."),
    "name_middle_dot_misplaced": (
        "“·”只能用在姓名中间",
        "The middle dot goes only between name parts.",
    ),
    "name_invalid_character": (
        "姓名中有不支持的字符",
        "The name has characters that are not letters.",
    ),
    "name_traditional": (
        "请使用简体字填写姓名",
        "Write the name in simplified characters.",
    ),
    "password_too_short": ("密码至少8位", "A password has at least 8 characters."),
    "password_too_long": ("密码最多64位", "A password has at most 64 characters."),
    "password_too_common": (
        "密码过于常见，请换一个",
        "This password is too common; choose another.",
    ),
    "id_already_registered": (
        "该证件号码已注册，可通过“找回用户名”找回账号",
        "This ID number is already registered; use username recovery to find the account.",
    ),
    "phone_already_bound": (
        "该手机号已绑定其他账号",
        "This phone number is bound to another account.",
    ),
    "email_already_bound": (
        "该邮箱已绑定其他账号",
        "This email is bound to another account.",
    ),
    "too_many_attempts": (
        "验证码错误次数过多，请稍后重新获取",
        "Too many wrong codes; wait and ask for a new one.",
    ),
    # -- identity: login, sessions, devices ------------------------------
    "invalid_credentials": ("账号或密码错误", "Wrong login name or password."),
    "login_throttled": (
        "登录失败次数过多，请稍后再试",
        "Too many failed logins; wait before trying again.",
    ),
    "device_id_required": (
        "缺少设备标识（X-Device-Id）",
        "The X-Device-Id header is required.",
    ),
    "device_verification_required": (
        "您正在新设备上登录，请输入发送到绑定手机的验证码",
        "New device: enter the code sent to your bound phone.",
    ),
    "no_bound_phone": (
        "账号未绑定手机号，请使用“忘记手机号”找回",
        "The account has no bound phone; use forgot-phone recovery.",
    ),
    "device_required": (
        "请求缺少设备标识（X-Device-Id），会话只能在登录它的设备上使用",
        "The request names no device (X-Device-Id); a session works only on the "
        "device it was made on.",
    ),
    "payload_too_large": (
        "请求内容过大",
        "The request body is larger than this route accepts (see limit, in bytes).",
    ),
    "json_too_deep": (
        "JSON 嵌套层数过多",
        "The JSON body is nested too deeply.",
    ),
    "invalid_token": ("登录已失效，请重新登录", "Your session is invalid or expired."),
    "account_limited": (
        "账号身份证号重复待处理，暂不能使用此功能",
        "This account is limited until its duplicate ID number is resolved.",
    ),
    "password_incorrect": ("密码错误", "The password is wrong."),
    # -- identity: registration and profile ------------------------------
    "student_number_registered": (
        "该学校的此学号已注册",
        "This student number of this school is already registered.",
    ),
    "school_code_invalid": ("学校代码格式不正确", "The school code is malformed."),
    "student_number_invalid": ("学号格式不正确", "The student number is malformed."),
    "same_as_current": ("与当前信息相同", "This is the same as the current value."),
    "questions_invalid": (
        "需要设置三个互不相同的安全问题",
        "Set three different security questions.",
    ),
    "answer_too_short": (
        "安全问题答案至少 2 个字符",
        "A security answer needs at least 2 characters.",
    ),
    "guardian_not_needed": (
        "仅未满 14 周岁的账号需要绑定监护人手机",
        "Only accounts of children under 14 need a guardian phone.",
    ),
    "guardian_required": (
        "未满 14 周岁，需先绑定并验证监护人手机",
        "Under 14: a verified guardian phone is required first.",
    ),
    "no_match": ("未找到匹配的账号", "No matching account."),
    # -- identity: authentication info and deactivation ------------------
    "field_locked": (
        "当前学习情况下，部分认证信息不能修改",
        "Some authentication fields cannot change now.",
    ),
    "nothing_to_change": ("没有需要修改的内容", "Nothing to change."),
    "enrollment_year_invalid": ("入学年份不正确", "The enrollment year is invalid."),
    "department_invalid": ("院系名称不正确", "The department is invalid."),
    "not_eligible": (
        "暂不满足注销条件",
        "The account does not meet the conditions for closing.",
    ),
    # -- identity: linked identities -------------------------------------
    "provider_unknown": ("不支持的第三方平台", "Unknown identity provider."),
    "assertion_invalid": (
        "第三方登录凭证无效或已过期",
        "The provider assertion is invalid or expired.",
    ),
    "link_taken": (
        "该第三方账号已绑定其他账号",
        "This provider identity is linked to another account.",
    ),
    "link_not_found": ("未绑定该第三方账号", "No such linked identity."),
    # -- registry_sync: SCIM (RFC 7644 §3.12 scimType in the extra) ---------
    "precondition_failed": (
        "数据已被修改，请重新读取后再提交",
        "The resource changed since that version; read it again.",
    ),
    "scim_invalid_filter": ("筛选条件不正确", "The filter is not valid."),
    "scim_invalid_sort": ("排序字段不正确", "The sortBy attribute is not valid."),
    "scim_invalid_path": ("修改路径不正确", "The PATCH path is not valid."),
    "scim_no_target": ("修改路径未匹配到任何值", "The PATCH path matched no value."),
    "scim_mutability": ("该属性不可修改", "That attribute cannot be changed."),
    "scim_invalid_syntax": ("请求格式不正确", "The request is not valid SCIM."),
    "scim_invalid_value": ("属性值不正确", "An attribute value is not valid."),
    "scim_uniqueness": ("该值已被占用", "That value is already taken."),
    "scim_too_many": (
        "结果过多，请缩小筛选范围",
        "Too many results; narrow the filter.",
    ),
    "scim_invalid_version": ("不支持的 SCIM 版本", "Unsupported SCIM version."),
    "scim_member_unknown": (
        "班级成员必须是本校已有的学生",
        "Group members must be students of this school.",
    ),
    "scim_resource_not_found": ("未找到该资源", "No such resource."),
    # -- registry_sync: registry verification and school admin tools --------
    "verification_not_found": (
        "尚未提交学籍核验",
        "No registry verification has been submitted for this account.",
    ),
    "student_record_not_found": (
        "学籍库中没有该学号",
        "The school registry has no student with this number.",
    ),
    "record_inactive": (
        "该学籍记录已不在读（转学、毕业或停用）",
        "The registry record is not active (transferred, graduated or disabled).",
    ),
    "batch_partially_refused": (
        "部分条目有误未被接收，其余已保存",
        "Some items were refused (listed by index); the others were kept.",
    ),
    # -- registry_sync: OneRoster packages ----------------------------------
    "import_not_found": ("未找到该导入任务", "No such import."),
    "package_not_zip": ("上传的不是 zip 压缩包", "The upload is not a zip archive."),
    "package_too_large": ("压缩包过大", "The package is too large."),
    "verification_not_failed": (
        "只有核验未通过时才能申请更正",
        "A correction can be requested only after a failed verification.",
    ),
    "record_claimed": (
        "该学籍记录已被其他账号核验",
        "Another account has already been verified with this registry record.",
    ),
    "link_not_allowed": (
        "该账号已在其他学校通过学籍核验，不能手动关联到本校",
        "This account is verified at another school; it cannot be linked to yours.",
    ),
    # -- recovery: forgot phone, vouching, password reset, duplicate ID ------
    "recovery_not_found": (
        "未找到该找回流程",
        "No such recovery (or the token is wrong).",
    ),
    "recovery_token_required": (
        "缺少找回流程凭证（X-Recovery-Token）",
        "The X-Recovery-Token header is missing or malformed.",
    ),
    "recovery_step_invalid": (
        "当前步骤不可执行，请按顺序完成找回流程",
        "This step is not open now; follow the recovery's steps in order.",
    ),
    "recovery_expired": (
        "找回流程已过期，请重新开始",
        "The recovery expired; start again.",
    ),
    "recovery_in_progress": (
        "该账号已有进行中的找回流程",
        "A recovery of this account is already in progress.",
    ),
    "recovery_handed_over": (
        "该找回已完成交接",
        "This recovery was already handed over.",
    ),
    "resolution_not_found": (
        "未找到该证件号转移",
        "No such ID number move.",
    ),
    "cancel_window_over": (
        "已超过可撤销期限，请联系平台客服",
        "The time to undo this has passed; contact the platform.",
    ),
    "share_link_invalid": ("助力链接无效", "This vouch link is not valid."),
    "share_link_expired": ("助力链接已过期", "This vouch link has expired."),
    "old_phone_mismatch": (
        "原手机号不正确",
        "That is not the phone number bound before.",
    ),
    "same_as_old_phone": (
        "新手机号不能与原手机号相同",
        "The new phone must differ from the old one.",
    ),
    "not_eligible_voucher": (
        "您不能为该同学助力验证",
        "You cannot vouch for this recovery.",
    ),
    "method_unavailable": (
        "该账号未设置此找回方式",
        "This account has not set up that method.",
    ),
    "answers_incorrect": ("密保答案不正确", "The answers are not correct."),
    "method_locked": (
        "密保问题错误次数过多，今日已锁定",
        "Too many wrong answers; this method is locked for a day.",
    ),
    "account_locked": (
        "账号已锁定，等待人工审核",
        "The account is locked pending a review.",
    ),
    "not_duplicate_pending": (
        "该账号不处于证件重复待处理状态",
        "This account has no duplicate ID to resolve.",
    ),
    "review_in_progress": (
        "已有审核中的申请，请等待结果",
        "A review is already open; wait for its answer.",
    ),
    "review_not_found": ("未找到该审核", "No such review."),
    "review_decided": ("该审核已处理", "This review was already decided."),
    "photo_not_image": (
        "请上传 JPEG 或 PNG 图片",
        "Upload a JPEG or PNG image.",
    ),
    "photo_too_large": (
        "图片过大（不超过 5 MB）",
        "The image is too large (5 MB at most).",
    ),
    "photo_too_small": ("图片太小，看不清证件", "The image is too small to read."),
    "photo_too_many_pixels": ("图片像素过多", "The image has too many pixels."),
    "school_required": (
        "请先填写学校信息",
        "Set your school first (authentication info).",
    ),
    "assistance_daily_limit": (
        "今日协助申请已达上限（每天 5 次）",
        "You have sent today's 5 assistance requests.",
    ),
    "classmate_not_eligible": (
        "该同学信息不符或尚未通过学籍核验",
        "No verified student of your school matches that name and phone.",
    ),
    "message_not_found": ("未找到该消息", "No such message."),
    "message_needs_no_answer": ("该消息无需答复", "This message needs no answer."),
    "message_answered": ("该消息已答复", "This message was already answered."),
    # -- web pages ---------------------------------------------------------
    "csrf_failed": (
        "页面已过期，请刷新后重试",
        "The page is stale (CSRF check failed); reload and retry.",
    ),
    "json_required": (
        "请求须为 JSON（Content-Type: application/json）",
        "This request must be JSON (Content-Type: application/json).",
    ),
}


def message_for(code):
    """(zh, en) text for ``code``; a generic pair if it is not catalogued."""
    return MESSAGES.get(code, ("请求未能完成", "The request could not be completed."))
