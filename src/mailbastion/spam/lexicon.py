"""The word lists the hand-written rules match against: data only, no logic.

Sources: the link shorteners, free-mail providers and free web hosts are public services (lists kept by
URL-shortener and phishing trackers); the brands are those that public phishing reports (Check Point,
Vade, APWG) name as most impersonated, worldwide and per region (banks, posts, tax offices); the spam
phrases are the classic marketing-spam phrases every anti-spam rule set carries (SpamAssassin's body
rules, the "spam trigger words" lists email marketers are warned about); the phishing cues are the words
account-theft mail is made of, in the languages most phishing in Europe and the Americas is written in.
None is learned from a corpus: a site adds its own with the classifier (`mailbastion spam learn`).
"""

from __future__ import annotations

import re

from mailbastion.core.folded_search import folded

SHORTENERS = frozenset({
    "bit.ly", "bitly.com", "tinyurl.com", "t.co", "goo.gl", "ow.ly", "is.gd", "buff.ly", "rebrand.ly", "cutt.ly",
    "shorturl.at", "tiny.cc", "rb.gy", "t.ly", "s.id", "v.gd", "bl.ink", "soo.gd", "clck.ru", "qr.ae", "lnkd.in",
    "shorte.st", "adf.ly", "x.co", "tr.im", "su.pr", "mcaf.ee", "db.tt", "t2m.io", "urlz.fr", "u.to", "surl.li",
    "shorturl.asia", "qrco.de", "tiny.one", "shrtco.de", "1url.com", "lihi.cc", "link.ly", "urlr.me", "shor.by",
    "inx.lv", "gg.gg", "ln.run", "rotf.lol", "n9.cl", "kutt.it", "short.gy", "did.li", "hyperurl.co", "share.google",
    "zyp.to", "lmy.de", "tiny.pl", "shorturl.gg",
})

# Shorteners a platform runs for its own links: in that platform's own notifications they are no disguise.
SHORTENER_OWNERS: dict[str, tuple[str, ...]] = {
    "t.co": ("twitter.com", "x.com"), "lnkd.in": ("linkedin.com",), "goo.gl": ("google.com",),
    "share.google": ("google.com",), "db.tt": ("dropbox.com", "dropboxmail.com"), "mcaf.ee": ("mcafee.com",),
}

FREEMAIL = frozenset({
    "gmail.com", "googlemail.com", "yahoo.com", "yahoo.co.uk", "yahoo.fr", "yahoo.de", "yahoo.es", "yahoo.it",
    "yahoo.com.br", "ymail.com", "rocketmail.com", "hotmail.com", "hotmail.co.uk", "hotmail.fr", "hotmail.de",
    "hotmail.it", "hotmail.es", "outlook.com", "outlook.fr", "outlook.de", "outlook.es", "outlook.com.br",
    "live.com", "live.co.uk", "live.fr", "msn.com", "aol.com", "gmx.com", "gmx.net", "gmx.de", "gmx.at", "mail.com",
    "mail.ru", "inbox.ru", "bk.ru", "list.ru", "yandex.ru", "yandex.com", "protonmail.com", "proton.me", "pm.me",
    "icloud.com", "me.com", "mac.com", "web.de", "zoho.com", "qq.com", "163.com", "126.com", "sina.com",
    "naver.com", "daum.net", "rediffmail.com", "libero.it", "virgilio.it", "laposte.net", "orange.fr", "free.fr",
    "t-online.de", "freenet.de", "seznam.cz", "wp.pl", "o2.pl", "interia.pl", "tutanota.com", "tuta.io",
    "mail2world.com", "usa.com", "consultant.com", "email.com", "excite.com", "lycos.com", "netscape.net",
    "juno.com", "netzero.net", "bigfoot.com", "hushmail.com", "uol.com.br", "bol.com.br", "terra.com.br",
})

# Free web hosting, app platforms and site builders: anyone can put a login page there in a minute, and a
# legitimate sender's mail seldom links to one. (Site builders with custom domains, shops and blogs are not
# listed: a small business links its own shop.)
FREE_HOSTING = (
    "firebaseapp.com", "web.app", "pages.dev", "workers.dev", "github.io", "gitlab.io", "netlify.app",
    "vercel.app", "herokuapp.com", "glitch.me", "weeblysite.com", "wixsite.com", "000webhostapp.com",
    "ipfs.io", "dweb.link", "cloudflare-ipfs.com", "r2.dev", "azurewebsites.net", "web.core.windows.net",
    "webflow.io", "framer.app", "framer.website", "godaddysites.com", "mystrikingly.com", "jimdosite.com",
    "yolasite.com", "ngrok.io", "ngrok-free.app", "replit.app", "repl.co", "surge.sh", "onrender.com", "fly.dev",
    "translate.goog", "trycloudflare.com", "carrd.co", "tilda.ws", "wuaze.com", "rf.gd", "epizy.com",
    "infinityfreeapp.com", "run.app", "cloudfunctions.net", "appspot.com",
)
# Shared documents, forms and object storage: every organisation uses them, and so does phishing (a login
# page in a bucket, a "shared document" lure). A weak sign on its own.
SHARED_STORAGE = (
    "docs.google.com", "sites.google.com", "forms.gle", "forms.office.com", "storage.googleapis.com",
    "firebasestorage.googleapis.com", "s3.amazonaws.com", "blob.core.windows.net", "backblazeb2.com",
    "digitaloceanspaces.com", "linodeobjects.com", "typeform.com", "jotform.com", "notion.site", "1drv.ms",
)
# Domains under which anyone gets a sender address in minutes: a cloud project's or a trial tenant's default
# domain. An organisation sends from its own domain.
SENDER_HOSTING = ("firebaseapp.com", "web.app", "onmicrosoft.com", "herokuapp.com", "azurewebsites.net",
                  "appspot.com", "netlify.app", "vercel.app", "pages.dev", "workers.dev", "github.io", "wixsite.com",
                  "weebly.com", "blogspot.com", "cloudfunctions.net", "run.app", "ngrok.io", "ngrok-free.app")
# Free image hosts: newsletters serve their images from their own or their mail provider's servers.
IMAGE_HOSTS = ("imgur.com", "imgprom.com", "zupimages.net", "imgchest.com", "ibb.co", "gyazo.com", "postimg.cc",
               "imgbb.com", "tinypic.com", "photobucket.com", "imageshack.us", "prnt.sc", "imgbox.com", "gifcdn.com",
               "pixhost.to", "imagetwist.com", "freeimage.host")

# Top-level domains that the public abuse reports (Spamhaus's "most abused TLDs", Interisle's phishing landscape
# studies) rank highest for phishing and spam per registration: cheap or free names registered by the thousand.
# Legitimate sites use them too, so this is a weak sign (the weight says how weak).
ABUSED_TLDS = frozenset({
    "top", "xyz", "online", "site", "shop", "click", "best", "icu", "cyou", "sbs", "buzz", "rest", "bond", "cfd",
    "monster", "quest", "lol", "mom", "fun", "space", "website", "uno", "loan", "win", "bid", "work", "tk", "ml",
    "ga", "cf", "gq", "cam", "hair", "beauty", "autos", "boats", "yachts", "makeup", "skin",
})

# A brand phishers put in the display name -> the words its own sending domains contain.
BRANDS: dict[str, tuple[str, ...]] = {
    "paypal": ("paypal",), "apple": ("apple", "icloud"), "icloud": ("apple", "icloud"),
    "microsoft": ("microsoft", "office", "outlook", "live", "azure", "sharepoint", "onmicrosoft"),
    "office 365": ("microsoft", "office", "outlook"), "office365": ("microsoft", "office", "outlook"),
    "outlook": ("microsoft", "outlook", "office", "live"), "onedrive": ("microsoft", "live", "sharepoint"),
    "sharepoint": ("microsoft", "sharepoint"), "amazon": ("amazon", "aws", "amazonses"),
    "netflix": ("netflix",), "coinbase": ("coinbase",), "metamask": ("metamask", "consensys"),
    "trust wallet": ("trustwallet",), "binance": ("binance",), "ledger": ("ledger",), "kraken": ("kraken",),
    "opensea": ("opensea",), "blockchain": ("blockchain",), "crypto.com": ("crypto",),
    "dhl": ("dhl",), "fedex": ("fedex",), "ups": ("ups",), "usps": ("usps",), "royal mail": ("royalmail",),
    "docusign": ("docusign",), "dropbox": ("dropbox",), "wetransfer": ("wetransfer",),
    "wells fargo": ("wellsfargo",), "chase": ("chase",), "bank of america": ("bankofamerica", "bofa"),
    "american express": ("americanexpress", "aexp"), "amex": ("americanexpress", "aexp"), "citibank": ("citi",),
    "facebook": ("facebook", "facebookmail", "meta"), "instagram": ("instagram", "facebookmail"),
    "whatsapp": ("whatsapp",), "linkedin": ("linkedin",), "google": ("google", "gmail", "youtube"),
    "gmail": ("google", "gmail"), "youtube": ("youtube", "google"), "adobe": ("adobe",),
    "norton": ("norton", "nortonlifelock", "gen"), "mcafee": ("mcafee",), "avast": ("avast",),
    "irs": ("irs",), "hmrc": ("hmrc", "gov"), "spotify": ("spotify",), "steam": ("steampowered", "steamcommunity"),
    "walmart": ("walmart",), "costco": ("costco",), "ebay": ("ebay",), "aliexpress": ("aliexpress", "alibaba"),
    "temu": ("temu",), "booking.com": ("booking",), "airbnb": ("airbnb",), "samsung": ("samsung",),
    "t-mobile": ("t-mobile", "tmobile"), "verizon": ("verizon",), "at&t": ("att",), "vodafone": ("vodafone",),
    "telekom": ("telekom",), "correios": ("correios",), "la poste": ("laposte",), "postnl": ("postnl",),
    "deutsche post": ("deutschepost", "dhl"), "bradesco": ("bradesco",), "itau": ("itau",), "itaú": ("itau",),
    "caixa": ("caixa",), "banco do brasil": ("bb", "bancodobrasil"), "santander": ("santander",),
    "nubank": ("nubank",), "mercado pago": ("mercadopago", "mercadolivre", "mercadolibre"),
    "mercado livre": ("mercadolivre", "mercadopago"), "ing": ("ing",), "rabobank": ("rabobank",),
    "abn amro": ("abnamro",), "sparkasse": ("sparkasse",), "commerzbank": ("commerzbank",), "hsbc": ("hsbc",),
    "barclays": ("barclays",), "revolut": ("revolut",), "venmo": ("venmo",), "zelle": ("zelle",),
    "lidl": ("lidl",), "aldi": ("aldi",), "ikea": ("ikea",), "zalando": ("zalando",), "decathlon": ("decathlon",),
    "geek squad": ("geeksquad", "bestbuy"), "roblox": ("roblox",), "yahoo": ("yahoo",), "aol": ("aol",),
    # Postal and parcel services, wallets and exchanges, security software, payments, rail: the other groups
    # that the same public reports (and national CERT warnings) name again and again.
    "correos": ("correos",), "poste italiane": ("poste", "posteitaliane"), "an post": ("anpost",),
    "canada post": ("canadapost", "postescanada"), "australia post": ("auspost",), "swiss post": ("post", "swisspost"),
    "postnord": ("postnord",), "bpost": ("bpost",), "gls": ("gls", "glsgroup"), "dpd": ("dpd",),
    "hermes": ("hermes", "myhermes"), "evri": ("evri",), "colissimo": ("colissimo", "laposte"),
    "chronopost": ("chronopost",), "inpost": ("inpost",), "trustwallet": ("trustwallet",), "trezor": ("trezor",),
    "exodus": ("exodus",), "phantom": ("phantom",), "uniswap": ("uniswap",), "gemini": ("gemini", "google"),
    "kucoin": ("kucoin",), "bybit": ("bybit",), "okx": ("okx",), "electrum": ("electrum",), "ftx": ("ftx",),
    "bitdefender": ("bitdefender",), "kaspersky": ("kaspersky",), "totalav": ("totalav",), "total av": ("totalav",),
    "klarna": ("klarna",),
    "western union": ("westernunion", "wu"), "moneygram": ("moneygram",), "deutsche bahn": ("bahn", "db"),
    # Retail and health-insurance names that national fraud help desks (Fraudehelpdesk, Verbraucherzentrale's
    # Phishing-Radar) report in fake gift-card and survey mail.
    "albert heijn": ("ah", "albertheijn"), "techniker krankenkasse": ("tk", "techniker"), "starbucks": ("starbucks",),
}
# Brands that are also common words or names ("Mark Chase", "Apple pie recipes") count only when the
# display name starts with them.
AMBIGUOUS_BRANDS = frozenset({"apple", "chase", "steam", "ups", "ing", "caixa", "amex", "ledger", "blockchain",
                              "google", "outlook", "norton", "costco", "telekom", "gls", "hermes", "exodus", "phantom",
                              "gemini", "electrum"})

# Classic marketing-spam phrases (a message needs several before it counts).
SPAM_PHRASES = (
    "100% free", "100% guaranteed", "100% satisfied", "additional income", "extra income", "extra cash",
    "earn money", "make money", "making money", "cash bonus", "free money", "million dollars", "money back",
    "no cost", "no fees", "no hidden costs", "no obligation", "risk free", "risk-free", "free gift", "free trial",
    "free quote", "free consultation", "free access", "free offer", "full refund", "lowest price", "best price",
    "incredible deal", "special promotion", "limited time", "while supplies last", "order now", "order today",
    "buy now", "call now", "act now", "apply now", "apply online", "click below", "click here", "sign up free",
    "don't delete", "do not delete", "this is not spam", "not junk", "you are a winner", "you have been selected",
    "you've been selected", "you have won", "you've won", "claim your", "cash prize", "lottery",
    "work from home", "home based business", "be your own boss", "financial freedom", "double your", "get paid",
    "eliminate debt", "get out of debt", "consolidate debt", "debt consolidation", "lower your mortgage",
    "mortgage rates", "bad credit", "credit report", "pre-approved", "preapproved", "no credit check",
    "lose weight", "weight loss", "viagra", "cialis", "online pharmacy", "no prescription", "anti-aging",
    "online degree", "casino", "meet singles", "hot singles", "stock alert", "investment opportunity",
    "satisfaction guaranteed", "as seen on", "increase sales", "mass email", "bulk email", "opt-in",
    "to be removed", "remove me", "removal instructions", "one time mailing", "this message is sent in compliance",
    "s.1618", "dear friend", "business proposal", "next of kin", "transfer the sum", "western union",
)
SPAM_PHRASE_RE = re.compile(r"(?i)(?<!\w)(" + "|".join(re.escape(p).replace(r"\ ", r"\s+") for p in SPAM_PHRASES)
                            + r")(?!\w)")

GENERIC_GREETING_RE = re.compile(
    r"(?i)\b(?:dear (?:friend|sir|madam|sir/madam|customer|valued customer|user|member|client|account holder|"
    r"beneficiary|winner|recipient|e-?mail user|webmail user|colleague|partner|cliente|usuário|usuario|kunde|"
    r"kundin|client|klant|valued \w+)|hello dear|prezado cliente|caro cliente|estimado cliente|sehr geehrter kunde|"
    r"cher client|beste klant|attn:|attention:)")

# Credential harvest: the request itself (verify, confirm, unlock or update an account; a mailbox that is full or
# locked), in the languages of ACCOUNT_CUES. One match is enough: ordinary mail seldom asks this by e-mail. A newsletter
# footer's "update your e-mail (and alert) preferences" is not such a request (56 ham of TREC 2007's 2,349).
CREDENTIAL_CUES = re.compile(
    r"(?i)\b(?:verify your (?:account|identity|e-?mail|mailbox|wallet|information|details)|"
    r"confirm your (?:account|identity|e-?mail|password|details|information|wallet)|"
    r"(?:update|validate|restore|reactivate|unlock) your (?:account|payment|billing|card|mailbox|e-?mail|information|"
    r"details|wallet)(?!\s+(?:(?:and|&|or)\s+[\w-]+\s+)?(?:preferences|settings|subscriptions?|options))|"
    r"(?:account|mailbox|e-?mail|card|wallet|access) (?:has been|was|is|will be) (?:suspended|locked|"
    r"disabled|deactivated|closed|blocked|limited|restricted|terminated)|unusual (?:sign-?in|login|log-?in) "
    r"(?:activity|attempt)|mailbox (?:is )?(?:full|quota)|storage (?:is )?full|password (?:will )?expire|"
    r"(?:sign|log) ?in to (?:verify|confirm|restore|avoid)|"
    r"sua conta (?:foi|será|est[aá]) (?:bloqueada|suspensa|desativada)|atualiz(?:e|ar) (?:seus|os) dados|"
    r"confirm(?:e|ar) (?:seus|os) dados|verifi(?:que|car) (?:sua|a) conta|"
    r"su cuenta (?:ha sido|será|est[aá]) (?:bloqueada|suspendida)|verifi(?:que|car) su cuenta|actualice sus datos|"
    r"ihr konto (?:wurde|wird) (?:gesperrt|eingeschränkt|deaktiviert)|bestätigen sie ihr(?:e)? (?:konto|identität|daten)|"
    r"votre compte (?:a été|sera) (?:suspendu|bloqué|désactivé)|vérifiez votre compte|"
    # A wallet's secret, a new access to confirm: what crypto and bank-login phishing ask for.
    r"recovery phrase|seed phrase|secret phrase|wallet phrase|novo acesso|acesso (?:suspeito|não autorizado)|"
    r"bitte bestätigen sie|ihre (?:adresse|daten|identität) (?:zu )?bestätigen|"
    r"confirm (?:the|this) (?:transaction|payment|login)|"
    # The same requests in Dutch, German, French, Spanish, Italian and Portuguese word orders: an account that is or
    # will be blocked, suspended or deleted (a few words may stand between: "wird in 2 Tagen gelöscht").
    r"uw (?:account|rekening|bankrekening|betaalrekening|pas|mailbox|e-?mailaccount) (?:is|wordt|werd)(?: tijdelijk)? "
    r"(?:geblokkeerd|opgeschort|gedeactiveerd|beperkt|afgesloten|verwijderd)|"
    r"(?:verifieer|bevestig|controleer) uw (?:account|identiteit|gegevens)|"
    r"(?:ihr|das) (?:e-mail-?)?konto (?:wird|wurde)(?: [\w-]+){0,5} (?:gelöscht|geschlossen|gesperrt|eingeschränkt|"
    r"deaktiviert)|"
    r"votre (?:compte|messagerie|boîte (?:mail|aux lettres)) (?:a été|sera|est)(?: temporairement)? (?:suspendu|bloqué|"
    r"désactivé|restreint|limité|supprimé)e?|confirmez votre (?:identité|compte|adresse)|"
    r"mettez à jour vos (?:informations|coordonnées|données)|"
    r"su cuenta (?:ha sido|será|está)(?: temporalmente)? (?:bloqueada|suspendida|restringida|limitada|desactivada)|"
    r"verifique su identidad|confirme sus datos|"
    r"il tuo (?:account|conto) (?:è stato|sarà|verrà) (?:sospeso|bloccato|disattivato|limitato)|"
    r"verifica il tuo (?:account|conto|identità)|"
    r"bloqueamos (?:a )?sua conta|sua conta (?:foi|será|est[aá]) (?:limitada|restrita))")

# Advance-fee fraud ("419"): an inheritance, a fund or a consignment waiting for a stranger. Two different cues.
ADVANCE_FEE_CUES = re.compile(
    r"(?i)\b(?:next of kin|beneficiary|(?:million|m) (?:us )?(?:dollars|usd|euros?)|intestate|deceased (?:client|customer)|"
    r"consignment|compensation fund|barrister|atm (?:master )?card|inheritance|donation|fund transfer|"
    r"transfer of (?:the )?fund|foreign partner|late husband|my late|god bless you|strictly confidential|lottery|"
    # The proposal itself: a confidential business deal, a plea for help, a share of a sum to move abroad.
    r"(?:urgent and |strictly )?confidential business|"
    r"(?:plea|request) for (?:your )?(?:assistance|help|cooperation)|transfer (?:of )?(?:this|the|these) (?:money|funds?|sum)|"
    r"(?:\d+|ten|twenty|thirty|forty)\s*(?:%|percent|per cent) of the (?:total )?(?:sum|fund|money|amount)|"
    r"security company|huge sum|sum of (?:us)?\$?\s?\d)\b")

# Removal or opt-out instructions (the footer of bulk mail); with no List-* header the list does not say it is one.
REMOVAL_CUES = re.compile(
    r"(?i)(?:to be removed|to remove (?:your(?:self| address| e-?mail| name)?|me)|removed? from (?:our|this|the|future) "
    r"(?:mailing |e-?mail )?(?:list|mailings)|type \"?remove\"?|with \"?remove\"? in the subject|\bopt[- ]?out\b|unsubscribe)")

# Bulk-mail software that names itself in X-Mailer (2000s ratware and mass mailers sold to spammers: QuickSender,
# "Group Mail", "Advanced Mass Sender", Send-Safe, Dark Mailer ...). Mail clients and the mailing-list managers and
# newsletter services people subscribe to do not call themselves so.
BULK_MAILER_RE = re.compile(r"(?i)group\s*mail|mass\s*(?:mail|sender)|bulk|quick\s*sender|stormpost|"
                            r"e-?mail\s*(?:blaster|marketer|sender)|mail\s*king|send-?safe|dark\s*mailer")

# Account theft is asking for an account's secrets (ACCOUNT) under a threat or a deadline (URGENCY).
ACCOUNT_CUES = re.compile(
    r"(?i)\b(?:account|password|passcode|log ?in|sign[ -]?in|credentials|wallet|mailbox|verify|verification|"
    r"confirm your|validate your|update your (?:payment|billing|information|details|account)|billing information|"
    r"payment (?:details|information|method)|card details|security code|seed phrase|recovery phrase|"
    r"conta|senha|acesso|cadastro|cuenta|contraseña|acceso|konto|passwort|kennwort|zugangsdaten|compte|"
    r"mot de passe|identifiant|wachtwoord|rekening|inloggen|account\w*)\b")
URGENCY_CUES = re.compile(
    r"(?i)\b(?:suspend\w*|locked|blocked|deactivat\w*|disabled|terminat\w*|expir\w*|unusual (?:activity|sign-?in)|"
    r"suspicious|unauthori[sz]ed|restricted|within \d+ (?:hours|days)|24 hours|48 hours|immediately|urgent\w*|"
    r"final (?:notice|warning|reminder)|last (?:notice|warning|reminder)|action required|failure to|"
    r"will be (?:closed|deleted|suspended|removed|terminated)|bloquead\w*|bloqueio|suspens\w*|imediat\w*|"
    r"gesperrt|dringend|sofort|ablauf\w*|bloqué\w*|suspendu\w*|geblokkeerd|verlopen|onmiddellijk|"
    r"gelöscht|abgelaufen|letzte (?:warnung|mahnung|erinnerung)|laatste (?:waarschuwing|herinnering)|opgeschort|"
    r"dernier (?:avertissement|rappel)|immédiatement|expiré\w*|inmediatamente|urgente|último aviso|"
    r"immediatamente|sospes[oa]|bloccat[oa])\b")

# Prize, payout, crypto and casino words (a message needs two different ones): the bait of advance-fee,
# fake-giveaway and crypto-drainer mail, in the same languages.
PRIZE_CUES = re.compile(
    r"(?i)\b(?:airdrop|claim (?:your|now)|free spins?|freispiele|rodadas gr[aá]tis|tiradas gratis|casino|cassino|"
    r"jackpot|you(?:'ve| have)? won|winner|gewinner|gewonnen|gewinnspiel|gagnant|gagn[ée]|ganhou|ganhador|vencedor|"
    r"ganador|gefeliciteerd|prize|prêmio|premio|prijs|preis|reward|recompensa|belohnung|beloning|récompense|"
    r"gift ?card|gutschein|cadeaukaart|carte cadeau|vale[- ]presente|tarjeta regalo|bitcoin|crypto|btc|usdt|"
    r"withdraw|auszahlung|saque|resgat\w*|lottery|loterie|lotto|sweepstakes?|"
    # Being chosen, congratulated or promised a win, in the same languages ("Glückwunsch! Sie wurden ausgewählt").
    r"(?:been|were) (?:selected|chosen|handpicked)|glückwunsch|gratulieren|gewinnen|"
    r"ausgewählt|auserwählt|prämie|belohnungen|beloningen|winnaar|geselecteerd|parabéns|selecionad[oa]|"
    r"felicidades|seleccionad[oa]|félicitations|sélectionné|"
    # A tax refund waiting to be claimed (the tax office's name is the bait): HMRC, IRS, Receita Federal lures.
    r"tax refund|steuererstattung|restitui\w*|reembolso de impuestos|remboursement d'impôts?|belastingteruggave)\b")

# Fake renewal notices (and their "call us to cancel" variant): a security suite (SECURITY_PRODUCT) whose subscription
# is said to have expired, be about to, or have been renewed and charged (RENEWAL), in the same languages. The
# vendors' own notices come from their own domains (SECURITY_VENDORS, checked with the brands' words).
SECURITY_PRODUCT_CUES = re.compile(
    r"(?i)\b(?:anti-?virus\w*|antiviren\w*|mcafee|norton|total ?av|avast|kaspersky|bitdefender|malwarebytes|"
    r"geek squad|virus protection|total protection|internet security)\b")
RENEWAL_CUES = re.compile(
    r"(?i)\b(?:(?:subscription|membership|plan|license|licence)(?: \w+){0,3} (?:has |have |was |is )?"
    r"(?:expired|expires|expiring|renewed|(?:about to|going to|set to) (?:expire|renew)|auto-?renew\w*)|"
    r"(?:abonnement|abo|mitgliedschaft|lizenz)(?: [\w-]+){0,3} (?:ist |wurde |wird )?"
    r"(?:abgelaufen|geschlossen|verlängert|gekündigt)|abonnement (?:is )?(?:verlopen|verlengd)|abonnement (?:a |est )?(?:expiré|renouvelé)|"
    r"assinatura (?:expirou|expirada|renovada)|suscripción (?:ha )?(?:caducado|vencido|expirado|renovado)|"
    r"renew (?:your|now)|erneuern sie|jetzt erneuern)")
SECURITY_VENDORS = ("mcafee", "norton", "totalav", "avast", "kaspersky", "bitdefender", "geek squad")

# The cue lists above are searched on case-folded text without IGNORECASE (core/folded_search.py): the same
# matches at about a third of the cost (they were ~1.5 ms of every message's spam stage). A pattern that
# cannot be proven equal that way stays as it is.
for _name in ("SPAM_PHRASE_RE", "GENERIC_GREETING_RE", "CREDENTIAL_CUES", "ADVANCE_FEE_CUES", "REMOVAL_CUES",
              "ACCOUNT_CUES", "URGENCY_CUES", "PRIZE_CUES",
              "SECURITY_PRODUCT_CUES", "RENEWAL_CUES"):
    globals()[_name] = folded(globals()[_name])
del _name
