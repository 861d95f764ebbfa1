"""The templates Order Bell ships with, in English and Spanish, as plain data.

Keys are ``(name, locale, part)``; parts are ``text`` (SMS, chat apps, push, staff chat,
and the plain-text body of an email), ``subject`` and ``html`` (email) and ``voice``.

Each trigger's wording is written once per locale as a *message* (the sentence after the
greeting) and composed into the parts below. SMS texts are kept inside GSM-7 so that a
typical update is one segment: the Spanish wording avoids á, í, ó and ú (not in GSM-7)
by choice of words rather than by dropping accents. Variables are those of
:func:`orderbell.domain.templates.build_context`.
"""

from __future__ import annotations

PARTS: tuple[str, ...] = ("text", "subject", "html", "voice")
LOCALES: tuple[str, ...] = ("en", "es")

_PICKUP = "fulfillment == 'pickup'"
_DELIVERY = "fulfillment == 'delivery'"
#: Statuses for which a promised/ETA time is still news.
_ACTIVE = "status in ('placed', 'confirmed', 'in_kitchen', 'out_for_delivery')"

GREETING: dict[str, str] = {
    "en": "Hi {{ name }}, ",
    "es": "Hola{% if name %} {{ name }}{% endif %}, ",
}
TRACK: dict[str, str] = {
    "en": "{% if tracking_link %} Track: {{ tracking_link }}{% endif %}",
    "es": "{% if tracking_link %} Sigue tu pedido: {{ tracking_link }}{% endif %}",
}
VOICE_INTRO: dict[str, str] = {
    "en": "Hello{% if first_name %} {{ first_name }}{% endif %}. This is {{ location_name }}. ",
    "es": "Hola{% if first_name %} {{ first_name }}{% endif %}."
    " Te llamamos de {{ location_name }}. ",
}
VOICE_OUTRO: dict[str, str] = {"en": " Thank you, goodbye.", "es": " Gracias, adiós."}
#: How the order number is read aloud (digits one by one).
ORDER_SPOKEN: dict[str, str] = {
    "en": "number {{ number_spoken }}",
    "es": "número {{ number_spoken }}",
}

MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "placed": "we got your order {{ order_number }} at {{ location_name }}."
        "{% if time %} Expected {{ time }}.{% endif %}",
        "confirmed": "your order {{ order_number }} is confirmed.{% if time %}"
        f"{{% if {_DELIVERY} %}} Delivery{{% elif {_PICKUP} %}} Pickup"
        "{% else %} Ready{% endif %} at about {{ time }}.{% endif %}",
        "in_kitchen": "your order {{ order_number }} is being prepared."
        "{% if time %} Expected {{ time }}.{% endif %}",
        "ready": f"your order {{{{ order_number }}}} {{% if {_PICKUP} %}}"
        "is ready for pickup at {{ location_name }}."
        f"{{% elif {_DELIVERY} %}}is ready and will be on its way soon."
        "{% else %}is ready and on its way to your table.{% endif %}",
        "out_for_delivery": "your order {{ order_number }} is out for delivery."
        "{% if time %} Arriving about {{ time }}.{% endif %}",
        "completed": f"thanks for {{% if {_DELIVERY} %}}ordering: order {{{{ order_number }}}}"
        f" has been delivered. Enjoy!{{% elif {_PICKUP} %}}picking up order "
        "{{ order_number }}. Enjoy!{% else %}dining with us at {{ location_name }}."
        " See you soon!{% endif %}",
        "cancelled": "your order {{ order_number }} at {{ location_name }} was cancelled."
        "{% if location_phone %} Questions? Call {{ location_phone }}.{% endif %}",
        "delayed": "sorry, your order {{ order_number }} is running late."
        "{% if time %} New estimate: {{ time }}.{% endif %}",
        "feedback": "thanks for ordering from {{ location_name }}! How was order"
        " {{ order_number }}?{% if feedback_link is defined and feedback_link %} Tell us: {{ feedback_link }}"
        "{% else %} Just reply to tell us.{% endif %}",
        "resend": "your order {{ order_number }} at {{ location_name }} is {{ status_text }}."
        "{% if time and status in active %} Expected {{ time }}.{% endif %}",
        "inquiry": "your order {{ order_number }} is {{ status_text }}."
        "{% if time and status in active %} Expected {{ time }}.{% endif %}"
        "{% if location_phone %} Need help? Call {{ location_phone }}.{% endif %}",
    },
    "es": {
        "placed": "hemos recibido tu pedido {{ order_number }} en {{ location_name }}."
        "{% if time %} Hora prevista: {{ time }}.{% endif %}",
        "confirmed": "tu pedido {{ order_number }} ha sido confirmado.{% if time %}"
        f"{{% if {_DELIVERY} %}} Entrega prevista{{% elif {_PICKUP} %}} Recogida prevista"
        "{% else %} Hora prevista{% endif %}: {{ time }}.{% endif %}",
        "in_kitchen": "estamos preparando tu pedido {{ order_number }}."
        "{% if time %} Hora prevista: {{ time }}.{% endif %}",
        "ready": f"tu pedido {{{{ order_number }}}} {{% if {_PICKUP} %}}"
        "ya se puede recoger en {{ location_name }}."
        f"{{% elif {_DELIVERY} %}}ya se ha preparado. Pronto te lo enviamos."
        "{% else %}ya va de camino a tu mesa.{% endif %}",
        "out_for_delivery": "tu pedido {{ order_number }} va de camino."
        "{% if time %} Llegada prevista: {{ time }}.{% endif %}",
        "completed": f"gracias por {{% if {_DELIVERY} %}}tu pedido {{{{ order_number }}}}, ya"
        f" entregado. ¡Buen provecho!{{% elif {_PICKUP} %}}recoger tu pedido"
        " {{ order_number }}. ¡Buen provecho!{% else %}visitarnos en {{ location_name }}."
        " ¡Hasta pronto!{% endif %}",
        "cancelled": "tu pedido {{ order_number }} en {{ location_name }} ha sido cancelado."
        "{% if location_phone %} ¿Dudas? Llama al {{ location_phone }}.{% endif %}",
        "delayed": "lo sentimos, tu pedido {{ order_number }} va con retraso."
        "{% if time %} Nueva hora prevista: {{ time }}.{% endif %}",
        "feedback": "gracias por tu pedido {{ order_number }} en {{ location_name }}."
        " ¿Qué tal todo?{% if feedback_link is defined and feedback_link %} Cuéntanoslo: {{ feedback_link }}"
        "{% else %} Responde a este mensaje y cuéntanoslo.{% endif %}",
        "resend": "estado de tu pedido {{ order_number }} en {{ location_name }}:"
        " {{ status_text }}.{% if time and status in active %} Hora prevista: {{ time }}."
        "{% endif %}",
        "inquiry": "estado de tu pedido {{ order_number }}: {{ status_text }}."
        "{% if time and status in active %} Hora prevista: {{ time }}.{% endif %}"
        "{% if location_phone %} ¿Dudas? Llama al {{ location_phone }}.{% endif %}",
    },
}

SUBJECTS: dict[str, dict[str, str]] = {
    "en": {
        "placed": "We got your order {{ order_number }}",
        "confirmed": "Order {{ order_number }} confirmed",
        "in_kitchen": "Order {{ order_number }} is being prepared",
        "ready": f"Order {{{{ order_number }}}} is ready{{% if {_PICKUP} %}} for pickup"
        "{% endif %}",
        "out_for_delivery": "Order {{ order_number }} is on its way",
        "completed": "Thanks for your order {{ order_number }}",
        "cancelled": "Order {{ order_number }} was cancelled",
        "delayed": "Order {{ order_number }} is running late",
        "feedback": "How was your order from {{ location_name }}?",
        "resend": "Your order {{ order_number }}: {{ status_text }}",
        "inquiry": "Your order {{ order_number }}: {{ status_text }}",
        "_subject": "Your order {{ order_number }} from {{ location_name }}",
    },
    "es": {
        "placed": "Hemos recibido tu pedido {{ order_number }}",
        "confirmed": "Pedido {{ order_number }} confirmado",
        "in_kitchen": "Estamos preparando tu pedido {{ order_number }}",
        "ready": f"Tu pedido {{{{ order_number }}}} está listo{{% if {_PICKUP} %}} para recoger"
        "{% endif %}",
        "out_for_delivery": "Tu pedido {{ order_number }} va de camino",
        "completed": "Gracias por tu pedido {{ order_number }}",
        "cancelled": "Pedido {{ order_number }} cancelado",
        "delayed": "Tu pedido {{ order_number }} va con retraso",
        "feedback": "¿Qué tal tu pedido de {{ location_name }}?",
        "resend": "Tu pedido {{ order_number }}: {{ status_text }}",
        "inquiry": "Tu pedido {{ order_number }}: {{ status_text }}",
        "_subject": "Tu pedido {{ order_number }} de {{ location_name }}",
    },
}

#: Voice wording where the written message does not read well aloud.
VOICE_MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "feedback": "Thanks for ordering from us. We hope you enjoyed order"
        " {{ order_spoken }}. We would love your feedback by text or email.",
    },
    "es": {
        "feedback": "Gracias por tu pedido {{ order_spoken }}. Esperamos que te haya gustado."
        " Nos encantaría conocer tu opinión por mensaje o correo.",
    },
}

#: Appended to the plain-text body of an email that carries an unsubscribe link
#: (follow-ups and marketing): who sent it, the location's postal address (CAN-SPAM) and
#: the visible unsubscribe link (Gmail/Yahoo bulk-sender rules, CASL).
EMAIL_FOOTER: dict[str, str] = {
    "en": "--\n{{ location_name }}{% if location_address %}, {{ location_address }}{% endif %}\n"
    "Unsubscribe from follow-up and offer emails: {{ unsubscribe_link }}",
    "es": "--\n{{ location_name }}{% if location_address %}, {{ location_address }}{% endif %}\n"
    "Darte de baja de los correos de seguimiento y ofertas: {{ unsubscribe_link }}",
}
UNSUBSCRIBE_WORDS: dict[str, str] = {
    "en": "Unsubscribe from follow-up and offer emails",
    "es": "Darte de baja de los correos de seguimiento y ofertas",
}

HTML_LAYOUT: dict[str, tuple[str, str]] = {
    "en": ("Hi {{ name }},", "View your order"),
    "es": ("Hola{% if name %} {{ name }}{% endif %},", "Ver tu pedido"),
}

_HTML = """<!DOCTYPE html>
<html lang="{{{{ lang }}}}">
<body style="margin:0;padding:24px;font-family:Helvetica,Arial,sans-serif;color:#1f2933;">
<p>{greeting}</p>
<p>{message}</p>
{{% if tracking_link %}}<p><a href="{{{{ tracking_link }}}}" style="display:inline-block;\
padding:10px 16px;background:#1f2933;color:#ffffff;text-decoration:none;border-radius:4px;">\
{button}</a></p>{{% endif %}}
<p style="color:#616e7c;font-size:13px;">{{{{ location_name }}}}\
{{% if location_address %}}<br>{{{{ location_address }}}}{{% endif %}}\
{{% if location_phone %}}<br>{{{{ location_phone }}}}{{% endif %}}\
{{% if unsubscribe_link is defined and unsubscribe_link %}}<br><a href="{{{{ unsubscribe_link }}}}" \
style="color:#616e7c;">{unsubscribe}</a>{{% endif %}}</p>
</body>
</html>
"""

#: Per locale: how a status reads after "your order is" / "estado de tu pedido:".
#: ``status:fulfillment`` entries refine a status for one fulfilment type.
STATUS_WORDS: dict[str, dict[str, str]] = {
    "en": {
        "placed": "received",
        "confirmed": "confirmed",
        "in_kitchen": "being prepared",
        "ready": "ready",
        "ready:pickup": "ready for pickup",
        "out_for_delivery": "out for delivery",
        "completed": "completed",
        "completed:delivery": "delivered",
        "completed:pickup": "picked up",
        "cancelled": "cancelled",
    },
    "es": {
        "placed": "recibido",
        "confirmed": "confirmado",
        "in_kitchen": "en cocina",
        "ready": "listo",
        "ready:pickup": "listo para recoger",
        "out_for_delivery": "en camino",
        "completed": "completado",
        "completed:delivery": "entregado",
        "completed:pickup": "recogido",
        "cancelled": "cancelado",
    },
}

FULFILLMENT_WORDS: dict[str, dict[str, str]] = {
    "en": {"pickup": "pickup", "delivery": "delivery", "dine_in": "dine-in"},
    "es": {"pickup": "recogida", "delivery": "entrega a domicilio", "dine_in": "en el local"},
}

#: A guest with no known name is greeted as...
NAME_FALLBACK: dict[str, str] = {"en": "there", "es": ""}

#: Triggers whose SMS text leaves the tracking link out.
NO_LINK_IN_TEXT: frozenset[str] = frozenset({"feedback"})


def _capitalised(source: str) -> str:
    return source[:1].upper() + source[1:] if source[:1].isalpha() else source


def _compose() -> dict[tuple[str, str, str], str]:
    templates: dict[tuple[str, str, str], str] = {}
    for locale, messages in MESSAGES.items():
        greeting, button = HTML_LAYOUT[locale]
        for name, message in messages.items():
            message = message.replace("status in active", _ACTIVE)
            link = "" if name in NO_LINK_IN_TEXT else TRACK[locale]
            templates[(name, locale, "text")] = GREETING[locale] + message + link
            templates[(name, locale, "subject")] = SUBJECTS[locale][name]
            templates[(name, locale, "html")] = _HTML.format(
                greeting=greeting,
                message=_capitalised(message),
                button=button,
                unsubscribe=UNSUBSCRIBE_WORDS[locale],
            )
            spoken = VOICE_MESSAGES[locale].get(name) or _capitalised(message)
            spoken = spoken.replace("{{ order_number }}", ORDER_SPOKEN[locale])
            spoken = spoken.replace("{{ order_spoken }}", ORDER_SPOKEN[locale])
            templates[(name, locale, "voice")] = VOICE_INTRO[locale] + spoken + VOICE_OUTRO[locale]
        templates[("_subject", locale, "subject")] = SUBJECTS[locale]["_subject"]
        templates[("_email_footer", locale, "text")] = EMAIL_FOOTER[locale]
    return templates


DEFAULT_TEMPLATES: dict[tuple[str, str, str], str] = _compose()
