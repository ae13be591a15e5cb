"""Reply labels (docs/rules.md, Sequences): a pure decision over what a reply says.

Rules run in a fixed order, the first that matches wins, and each names the words that made
it match (the reason shown beside the label):

1. ``bounce``: a delivery report, or mail from the mail system about a failed delivery;
2. ``unsubscribe_request``: "remove me", "stop emailing", "abmelden", "désinscrire", "dar de
   baja" …: first, because honouring it is the law, even inside a refusal or an auto-reply;
3. ``out_of_office``: absence wording, with the return date when the text gives one;
4. ``wrong_person``: "not the right person", "you should contact …", with the colleague's
   address when one is given;
5. ``auto_reply``: a machine's answer (Auto-Submitted headers, ticket confirmations);
6. ``not_interested``: refusals, checked before interest so that "not interested" and "we
   are not interested at this time" are refusals;
7. ``interested``: asks for a call, a time, a price, more information;
8. ``other``.

Where the rules end at ``other``, a small statistical model trained on the labeled replies
(outreach.events.classify_model) reads the reply: a probability of ``unsubscribe_request``
of 0.3 or more makes it one (unsure between "other" and a request to stop, the law decides),
and any other label of the model is taken at 0.9 or more. A refusal (6) the model reads as a
request to stop (0.5 or more) becomes ``unsubscribe_request``. The model never takes a label
away from the rules otherwise, answers ``bounce`` only (at 0.9 or more) in mail from the mail
system (mailer-daemon, postmaster) whose wording the rules do not know, and its reason names its
probability and the words that weighed most: "model: 0.93 not_interested; words: 'not a
fit', 'pass'".

Word lists cover English, German, French and Spanish. Matching is on the visible reply (the
quoted history would otherwise make every reply say what our own mail said), lower-cased and
with accents kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

from outreach.events import classify_model
from outreach.events.classify_model import Model
from outreach.events.mailcontent import Content

INTERESTED = "interested"
NOT_INTERESTED = "not_interested"
OUT_OF_OFFICE = "out_of_office"
AUTO_REPLY = "auto_reply"
UNSUBSCRIBE_REQUEST = "unsubscribe_request"
WRONG_PERSON = "wrong_person"
BOUNCE = "bounce"
OTHER = "other"
LABELS = (
    INTERESTED,
    NOT_INTERESTED,
    OUT_OF_OFFICE,
    AUTO_REPLY,
    UNSUBSCRIBE_REQUEST,
    WRONG_PERSON,
    BOUNCE,
    OTHER,
)


@dataclass(frozen=True)
class Verdict:
    label: str
    reason: str
    return_date: date | None = None
    referred_address: str = ""


def _words(*patterns: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


_BOUNCE_SENDER = re.compile(
    r"^(mailer[-_]?daemon|postmaster|mail-daemon|mdaemon|mail[-_.]?delivery\w*)@", re.I
)
# What a mail system (or a gateway in front of the recipient) writes when it gave up: the
# failed delivery said in words, in four languages, or an SMTP status of a refusal.
_BOUNCE = _words(
    r"undeliver(ed|able)",
    r"delivery (status notification \(failure\)|has failed|failed|failure)",
    r"mail delivery (failed|subsystem)",
    r"returned mail",
    r"address (rejected|not found)",
    r"user unknown",
    r"unzustellbar",
    r"nicht zugestellt",
    r"non remis",
    r"échec de (la )?(remise|livraison)",
    r"no se (ha )?pudo entregar",
    r"no entregado",
    # English: "wasn't able to deliver", "couldn't be delivered", "permanent error"
    r"\b(not|n't|unable to|never) (be )?(able to )?(deliver|delivered)\b",
    r"\b(message|e-?mail|mail) (was |has been )?(rejected|blocked|refused|returned)\b",
    r"\bpermanent (error|failure)\b|\bgiven up\b|\bno (further )?delivery attempts\b",
    r"\bno (such )?(mailbox|user|recipient|account)\b|\b(mailbox|account|address|recipient) "
    r"(does not|doesn't) exist\b|\b(mailbox|account) (is )?(unavailable|disabled|full)\b",
    # German, French, Spanish
    r"\bkonnte nicht (zugestellt|übermittelt|ausgeliefert)\b|\bzustellung\w* (ist )?"
    r"fehlgeschlagen\b|\b(empfänger|postfach|adresse) (ist )?(unbekannt|existiert nicht)\b",
    r"\b(pas pu|pu) être (remis|livré|distribué|délivré)e?s?\b|\b(adresse|destinataire|boîte "
    r"aux lettres)\b[^.\n]{0,40}\b(introuvable|inconnue?|inexistante|désactivée|pleine)\b",
    r"\bno se (ha )?(podido )?entreg\w*|\bno (se )?(ha )?(podido|pudo) (ser )?entreg\w*|"
    r"\b(dirección|cuenta|buzón)\b[^.\n]{0,40}\b(no existe|inexistente|no se ha encontrado)\b|"
    r"\bno se ha encontrado la dirección\b",
    # An SMTP refusal: an enhanced status 5.x.x or 4.x.x, or a 55x reply code
    r"\b[45]\.\d{1,3}\.\d{1,3}\b|\b55[0-4]\b",
)

# What an instruction tells a sender not to send ("Please do not send protected health
# information by email"): not a request to stop contact.
_THINGS_SENT = (
    r"(\w+ ){0,2}(information|info|data|documents?|files?|attachments?|payments?|passwords?|"
    r"invoices?|records|details of)"
)
# Ways of contacting someone, as a verb and as an -ing form, in English.
_CONTACT = r"e-?mail|contact|write|message|send|mail|reach out|call|spam|bother|ping|text|follow up"
_CONTACTING = (
    r"e-?mailing|contacting|writing|messaging|sending|mailing|reaching out|calling|spamming|"
    r"bothering|pinging|texting|following up"
)

_UNSUBSCRIBE = _words(
    # English
    r"\bunsubscribe\b",
    r"\bremove (me|us|my (e-?mail|address|name))\b",
    r"\btake (me|us|my (e-?mail|address|name)) off\b",
    r"\b(stop|quit|cease) (e-?mailing|emailing|contacting|messaging|sending|spamming|writing)",
    r"\bdo ?n[o']t (e-?mail|contact|write to|message) (me|us)\b",
    r"\bnever (e-?mail|contact|write to) (me|us)\b",
    r"\bno (more|further) (e-?mails|emails|messages|contact)\b",
    r"\bopt(ing)? (me )?out\b",
    r"\bdelete (my|our) (data|details|address|e-?mail)",
    r"\boff (your|the) (mailing )?list\b",
    r"\bremove\b.{0,40}\b(list|database|distribution|mailing)",
    r"\bgdpr\b",
    r"\bremove (my|our) (address|e-?mail|details|name)\b",
    r"\b(take|get) (my|our) (name|address|e-?mail) off\b",
    r"\b(cease|stop|end) (all )?(further )?(communication|contact|correspondence|outreach)\b",
    r"\A\W*take (me|us) off\W*\Z",
    r"\b(don't|do not) want (these|your|any|more|further) (e-?mails?|messages?|mails?)\b",
    r"\b(don'?t|do not|never) (write|e-?mail|contact|message) (me |us )?again\b",
    r"\bleave (me|us) alone\b",
    r"\A\W*stop\b\W",
    r"\b(did not|didn't|never) (opt(ed)? in|sign(ed)? up|subscribe|consent)",
    r"(\A|[.!?]\s+)(please )?(stop|remove)[.!]*\s*\Z",
    # German
    r"\babmelden\b",
    r"\babbestellen\b",
    r"\baustragen\b",
    r"\bausgetragen\b",
    r"\bkeine (weiteren |weitere )?(e-?mails|mails|nachrichten|kontaktaufnahme)",
    r"\bnicht mehr (an)?(schreiben|kontaktieren|anschreiben|zu kontaktieren|zu schreiben)",
    r"\b(daten|adresse|e-?mail-?adresse) (bitte )?löschen\b",
    r"\blöschen sie (meine|unsere)\b",
    r"\bstreichen sie (mich|uns)\b",
    r"\bvon (ihrer|der) (liste|verteilerliste|mailingliste)\b",
    r"\b(aus|von) (ihrem|dem|eurem) (verteiler|e-?mail-?verteiler|newsletter)\b",
    r"\btragen sie (mich|uns) aus\b",
    r"\bkeine (werbung|werbemails|werbe-?e-?mails)\b",
    r"\bwerbung\b.{0,30}\bwiderspreche\b",
    r"\bwiderspreche\b",
    # French
    r"\bd[ée]sinscri",
    r"\bd[ée]sabonn",
    r"\bretirez[- ](moi|nous)\b",
    r"\benlevez[- ](moi|nous)\b",
    r"\bsupprimez[- ](moi|nous|mon adresse|mes données)",
    r"\bne (plus|jamais) (me|nous) (contacter|écrire|envoyer|solliciter)",
    r"\bne (me|nous) (contactez|écrivez|sollicitez) plus\b",
    r"\barr[êe]tez de (m'|me |nous )?(écrire|contacter|envoyer|solliciter)",
    r"\bplus de (mails|e-?mails|messages)\b",
    r"\bne (plus|jamais) (m'|me |nous )?(envoyer|écrire|contacter|solliciter)",
    r"\bne (souhaite|veux|désire|souhaitons|voulons) plus (recevoir|être contacté)",
    r"\bsupprimer (mon adresse|mes données|mon e-?mail|mes coordonnées)",
    r"\bde votre (liste|fichier|base)\b",
    # Spanish
    r"\bdar(me|nos)? de baja\b",
    r"\bquít(en|e|a)(me|nos) de\b|\bsáquen(me|nos) de\b",
    r"\bno (vuelvan?|vuelva) a (contactar|escribir|enviar)",
    r"\b(solicito|pido|quiero) (la|mi|darme de) baja\b",
    r"\bdarme de baja\b",
    r"\bden de baja\b",
    r"\bd[ée](nme|nnos) de baja\b",
    r"\bbaja de (su|la|vuestra) lista\b",
    r"\bno (me|nos) (escriba[ns]?|contacte[ns]?|envíe[ns]?|vuelva[ns]? a (escribir|contactar))",
    r"\bdejen? de (escribirme|escribirnos|contactarme|contactarnos|enviarme|enviarnos|enviar)",
    r"\b(elimin|borr|quit)(en|e|ar)(me|nos)? (de (su|la|vuestra) lista|mis datos|mi correo)",
    r"\b(eliminen|borren|quiten) (mi|mis|nuestro|nuestros) (correo|datos|dirección)",
    r"\bno (deseo|quiero|queremos) recibir (más )?(correos|mensajes|emails)",
    # General shapes, whatever the exact words: a stop or a negation, a way of contacting,
    # and "again"/"any more" (a request to stop contact is an unsubscribe, not a refusal).
    rf"\b(stop|quit|cease|refrain from|end)\b[\w' ]{{0,20}}\b({_CONTACTING})\b",
    rf"\b(do ?n[o']t|do not|never|please don'?t|no need to)\b[\w' ]{{0,15}}\b({_CONTACT})\b"
    r"[^.?!\n]{0,40}\b(again|any ?more|further|in (the )?future|ever)\b",
    rf"\b(no|not|never|don't|do not) (want|wish|need) (to )?(receive|get|be)\b[^.?!\n]{{0,30}}"
    rf"\b(e-?mails?|mails?|messages?|contacted|emailed|{_CONTACTING})\b",
    r"(\A|\n|[.,;:!?]\s*)(please |pls |so )?stop( it| now| please)?\s*([.!]+|\Z)",
    r"\bun-?\s?su[bs]{1,2}c?r?i[bp]e?\w*",  # unsubscribe and its usual typos
    r"\b(right to|request) (erasure|be forgotten|deletion)\b|\berasure\b|\bdsgvo\b|\brgpd\b",
    r"\b(remove|delete|erase) (me|this address|this e-?mail|my (contact )?(info|details|data))\b",
    # German
    r"\bhören sie (bitte )?auf\b|\baufhören\b[^.?!\n]{0,30}\b(schreiben|mail|kontakt)",
    r"\b(nie|nicht) (mehr|wieder|mehr länger)\b[^.?!\n]{0,20}\b(an)?(schreiben|kontaktieren|"
    r"mailen|senden|zusenden|anrufen)\b",
    r"\bkeine (e-?mails?|mails?|nachrichten|werbung|post)\b[^.?!\n]{0,30}\bmehr\b",
    r"\b(bitte|umgehend|sofort)\b[\w ]{0,20}\blöschen\b|\b(nehmen|streichen|entfernen) sie "
    r"(mich|uns|meine)\b",
    # French
    r"\bne (m'|me |nous )?(\w+ )?(écri\w*|contact\w*|sollicit\w*|envoy\w*|relanc\w*|"
    r"spam\w*|appel\w*)\s+(plus|jamais)\b",
    r"\bne (veux|souhaite|désire|voulons|souhaitons)s? (plus|pas) (être|recevoir)\b",
    r"\bme retirer\b|\bretirer (mon adresse|mes coordonnées)|\bstop\b[^.?!\n]{0,5}\Z",
    r"\b(cess|arrêt)\w* de (m'|me |nous )?(envoy|écri|contact|sollicit|relanc|spam)\w*",
    r"\bm'oublier\b|\boubliez[- ](moi|nous)\b|\blaissez[- ](moi|nous) tranquilles?\b",
    r"\b(jamais|pas) (donné )?(mon|notre) (accord|consentement)\b",
    r"\bne plus (être|recevoir|me |m'|nous )",
    # Spanish
    r"\b(elimín|elimin|bórr|borr|quít|quit|sáqu|saqu|retír|retir)[a-záéíóú]*(me|nos)\b",
    r"\bdej(a|e|en|ad|ar) de (enviar|escribir|contactar|mandar|molestar)\w*",
    r"\bno (me|nos) (\w+ )?(escrib|contact|envi|mand|llam|molest)\w* (más|nunca)\b",
    r"\b(más|nunca) (me|nos) (escrib|contact|envi|mand)\w*",
    r"\bno\b[^.?!\n]{0,25}\b(me|nos) (\w+ )?(escrib|contact|envi|mand|llam|molest)\w*"
    r"( \w+)? (más|nunca)\b",
    r"\b(déjen(me|nos)|dejadme|déjame) en paz\b|\bno (he dado|di|dimos) (mi|nuestro) "
    r"consentimiento\b",
    # An imperative "don't …" at the start of a clause: "Do not contact this address."
    rf"(\A|\n|[.,;!?]\s*|\band\s+)(please |pls |kindly )?(do ?n[o']t|do not|never) (\w+ )?"
    rf"({_CONTACT}|follow[- ]?up)\b(?! ({_THINGS_SENT})\b)",
    r"\b(don'?t|do not|never) want to hear from (you|anyone)\b|\bunsub\b",
    r"\b(schreiben|kontaktieren|mailen|anrufen|belästigen) sie (mir|mich|uns)\b[^.?!\n]{0,20}"
    r"\bnicht (mehr|wieder)\b",
    r"\blass(en sie|t)? (mich|uns) (bitte )?in ruhe\b|\bnie (zugestimmt|eingewilligt)\b",
    r"\b(lose|drop|scrub|purge|forget|erase|delete|remove) (my|our|this) (e-?mail|address|"
    r"details|info|contact|data|name|number)\b",
    # Someone kept out of whatever sends the mail: "leave me off future campaigns", "drop me
    # from your sequence", "being left off your lists".
    r"\b(leave|left|keep|kept|take|taken|drop|dropped|scrub|scrubbed|exclude|excluded)( me| us)?"
    r" (off|out of|from)\b[^.?!\n]{0,30}\b(lists?|sequences?|campaigns?|cadences?|mailings?|"
    r"database|distribution|e-?mails?|outreach)\b",
)

# A removal verb and what is removed, in either order, close together (the shapes of "please
# remove my address from your list" that no fixed phrase list covers).
_REMOVE_VERBS = (
    r"remove|delete|erase|unsubscribe|stop|cease|quit|drop|scrub|purge|entfernen|löschen|streichen|unterlassen|"
    r"einstellen|austragen|retirer|retirez|supprimer|supprimez|enlever|enlevez|eliminar|"
    r"eliminen|borrar|borren|quitar|quiten|sacar|saquen"
)
_REMOVE_OBJECTS = (
    r"e-?mails?|mails?|messages?|mailings?|mailing list|list|records|database|contacting|"
    r"sequences?|campaigns?|cadences?|"
    r"writing to me|sending me|adresse|daten|datenbank|liste|verteiler|zusendungen|nachrichten|"
    r"werbung|envois|fichier|listes|données|base|correos?|datos|lista|base de datos|mensajes|"
    r"kontaktaufnahme|anrufe"
)
_REMOVAL = re.compile(
    rf"\b({_REMOVE_VERBS})\b[^.?!\n]{{0,50}}\b({_REMOVE_OBJECTS})\b"
    rf"|\b({_REMOVE_OBJECTS})\b[^.?!\n]{{0,30}}\b({_REMOVE_VERBS})\b",
    re.IGNORECASE,
)

# A reply that is nothing but the word.
_POLITE = r"please|pls|plz|bitte|svp|s'il vous plaît|merci|por favor|thanks|danke|gracias"
_UNSUBSCRIBE_ALONE = re.compile(
    rf"\A\W*(({_POLITE})\W*)?(remove|stop|unsubscribe|unsub|remove me|stop it|no more|abmelden|"
    rf"stopp|baja|désinscription|desuscribir)\W*(({_POLITE})\W*)?\Z",
    re.I,
)

_OOO = _words(
    # English
    r"\bout of (the )?office\b",
    r"\bout-of-office\b",
    r"\b(i am|i'm|i will be|currently) (away|on vacation|on holiday|travel+ing|out)\b",
    r"\b(i am|i'm|i will be|currently) on (annual |parental |maternity |paternity |sick )?leave",
    r"\b(i am|i'm|i will be|currently|be) on (\w+ ){0,2}leave\b",
    r"(\bnot|n't) (be )?(checking|reading|monitoring) (my )?e-?mails?\b",
    r"\bon (annual |parental |maternity |paternity |sick )?leave (until|till|through|from)\b",
    r"\b(away|off) (from the office|until|till)\b",
    r"\blimited access to (my )?e-?mail\b",
    r"\bwill (be back|return|respond|reply) (on|upon|when|after|to your)\b",
    r"\bback in the office\b",
    r"\bout sick\b|\bsick (today|leave)\b|\b(office|we) (is |are )?closed (for|until|from)\b",
    r"\b(travel+ing|away|offline|out) (this week|today|until|till|through|for the)\b",
    r"\bback (in |at work |in the office )?(tomorrow|on (the )?\w+day|next week|"
    r"(on )?(monday|tuesday|wednesday|thursday|friday))\b",
    r"(\A|\n|[.,;!?]\s*)(on vacation|on holiday|on leave|on pto|off today|out today)\b",
    r"\b(i'm|i am) (off|out) (today|this week|until|till)\b",
    r"\b(zurzeit|derzeit|momentan|aktuell|vorübergehend) nicht erreichbar\b",
    r"\bno (me )?(encuentro|estoy) en la oficina\b|\bnot in the office\b",
    r"\bgeschäftsreise\b|\bbetriebsferien\b|\bkrank(geschrieben|heitsbedingt)?\b",
    r"\bde viaje\b|\bde permiso\b|\ben formation\b|\bfermeture\b",
    # German
    r"\babwesen(d|heit)",
    r"\bnicht im (büro|haus)\b",
    r"\bausser haus\b|\baußer haus\b",
    r"\bim urlaub\b",
    r"\burlaubsbedingt\b",
    r"\bin elternzeit\b",
    r"\bab dem .{0,30} wieder\b",
    r"\bbin (ich )?(ab|am) .{0,30} wieder\b",
    r"\bwieder erreichbar\b",
    # French
    r"\babsente?\b",
    r"\ben (congés?|vacances|déplacement|arrêt maladie|congé maternité)\b",
    r"\bhors du bureau\b",
    r"\bde retour (le|au bureau|à partir)\b",
    # Spanish
    r"\bfuera de (la )?oficina\b",
    r"\bde vacaciones\b",
    r"\bausente\b",
    r"\bestaré de vuelta\b|\bregresaré\b|\bvolveré\b|\b(estaré|estoy) fuera\b|\bausencia\b",
    r"\b(on|taking) pto\b|\bdienstreise\b|\bmessage d'absence\b",
    r"\bde baja (médica|por maternidad|por paternidad)\b",
)

_WRONG_PERSON = _words(
    # English
    r"\bnot the (right|correct|best|appropriate|relevant) (person|contact|guy|one)\b",
    r"\bwrong (person|contact|guy|department)\b",
    r"\b(you should|you'll want to|you might want to|please|better to|best to) "
    r"(reach out to|contact|talk to|speak (to|with)|email|get in touch with)\b",
    r"\b(i'm|i am) not (responsible|in charge|the decision)",
    r"\bnot (my|our) (area|department|responsibility|call)\b",
    r"\b(no longer|not) (with|at|working (at|for)) (the company|\w+)\b.{0,80}@",
    r"\b(has )?left the company\b",
    r"\bno longer (works|working) (here|at|for)\b",
    r"\b(forwarded|passing|passed) (this|it|your (e-?mail|note|message)) (on )?to\b",
    r"\b(who|she|he|they) (handles?|looks after|is in charge of) (this|that|these|it)\b",
    r"\b(has|have) left\b",
    r"\b(forwarding|forwarded|passing|passed) (this |it )?(on )?to (our|the) [\w ]{0,30}"
    r"(manager|director|head|team|department|lead|person)\b",
    r"\bin charge of (this|that)\b",
    r"\bnot mine\b|\b(her|his|their) (e-?mail|address) is\b|\bthis isn't me\b",
    r"\bour [\w ]{0,30}(manager|director|head|lead|officer|team|department) is\b",
    r"\b(transmets|transfère) (à|au) (notre|mon|ma) [\w ]{0,20}(directeur|directrice|responsable|"
    r"service|équipe)\b",
    r"\bgéré par\b|\bs'en occupe\b|\b(ma|mon) collègue\b",
    r"\bnot (really )?my (area|department|responsibility|call|job|field)\b",
    r"\b(i'd|i would) (talk|speak|reach out|write) to\b",
    r"\bbei mir (falsch|an der falschen)\b|\bschreiben sie (bitte )?an\b",
    r"\blo lleva\b|\bescribirle a\b|\bmi compañer[oa]\b",
    r"\byou (want|need) (to talk to |to speak (to|with) )?(my|our) (\w+ )?"
    r"(husband|wife|partner|colleague|boss|manager|ceo|cfo|coo|cto|head|director|team)\b",
    r"\b(i|i've|i have) left\b",
    r"\b(i|i've|i have|he|she|he's|she's|has|have) (retired|moved on)\b",
    r"\byou('d| would|'ll| will)? (want|need|have) to (talk|speak|reach out|write|get in touch)"
    r" (to|with)\b|\bnot me\b[^.?!\n]{0,3}(\Z|[.!])",
    # "you would have to talk to …" in German, French and Spanish
    r"\b(tendrían|tendría|tienen|tiene|deberían|debería|habría|hay) que (hablar|contactar|"
    r"escribir|dirigirse)\w* (con|a)\b|\bno (lo )?(llevo|gestiono|manejo) yo\b",
    r"\bil (faudrait|faut) (voir|contacter|écrire|vous adresser|s'adresser)\b|\bce n'est pas "
    r"moi qui\b",
    r"\b(müssten|sollten|müssen) sie sich (bitte )?an\b|\bist nicht mein (bereich|thema)\b",
    # German
    r"\bnicht (der|die) (richtige|zuständige) (ansprechpartner|ansprechpartnerin|person|kontakt)",
    r"\bfalsche[nr]? (ansprechpartner|person|kontakt)",
    r"\bnicht zuständig\b",
    r"\bzuständig (ist|sind|wäre)\b",
    r"\bwenden sie sich (bitte )?an\b",
    r"\bnicht mehr (im unternehmen|bei|für)\b",
    r"\bweitergeleitet an\b|\bleite (ihre|die) (mail|nachricht|e-?mail) weiter\b",
    # French
    r"\bpas (la bonne|le bon) (personne|interlocuteur|contact)",
    r"\bmauvais(e)? (personne|interlocuteur|interlocutrice|contact)",
    r"\bne (suis|m'occupe) pas (le |la )?(responsable|en charge|de (ce|cela|ça))",
    r"\bs'occupe de (ce|cela|ça|ces sujets|ce sujet)\b",
    r"\b(contactez|adressez-vous à|écrivez à)\b",
    r"\bne fait plus partie\b|\ba quitté (la société|l'entreprise)\b",
    # Spanish
    r"\bno soy (la persona|el responsable|la responsable|quien)",
    r"\bpersona (equivocada|incorrecta|adecuada)\b",
    r"\b(contacte|contacta|escriba|escribe|hable|habla) (con|a)\b",
    r"\bse encarga de (esto|eso|este tema)\b|\bes quien (lleva|gestiona|se encarga)\b",
    r"\bya no (trabaja|está) en\b",
)

# Someone who has left: an auto-reply naming a successor is a referral, not an absence.
_DEPARTED = _words(
    r"\bno longer (with|at|works|working|employed)\b",
    r"\b(has )?left (the company|\w+ in)\b",
    r"\bnicht mehr (im unternehmen|bei|für)\b",
    r"\bne fait plus partie\b|\ba quitté\b|\b(i|he|she|has|have) retired\b",
    r"\bya no (trabaja|está) en\b",
)

_AUTO = _words(
    r"\bthis is an automat(ed|ic) (reply|response|message)\b",
    r"\bautomatic reply\b|\bauto-?reply\b|\bautoresponder\b",
    r"\b(we|i) (have )?received your (e-?mail|message|request|inquiry)\b",
    r"\bthank you for (your|contacting).{0,60}"
    r"(we will|we'll|someone will) (get back|respond|reply)",
    r"\bticket (number|#|id)\b|\bcase (number|#)\b",
    r"\bthis (mailbox|inbox|address) is (no longer|not) monitored\b",
    r"\bdo not reply to this\b",
    r"\bautomatische antwort\b|\bihre (nachricht|anfrage|e-?mail) (ist )?(bei uns )?eingegangen\b",
    r"\bwir haben ihre (nachricht|anfrage|e-?mail) erhalten\b",
    r"\bnous avons (bien )?reçu votre (message|demande|e-?mail)\b",
    r"\bmessage automatique\b|\bréponse automatique\b|\brespuesta automática\b",
    r"\bhemos recibido su (mensaje|correo|solicitud)\b",
    r"\bmensaje automático\b",
    r"\bverify (that )?you('re| are) (a )?(human|real)\b|\bsender verification\b",
    r"\byour (e-?mail|message|request|inquiry|enquiry) (has been|was|is) (received|logged)\b",
    r"\bthis (mailbox|inbox|address) is (monitored|checked|read)\b",
    r"\b(someone|a member|one|we|our \w+ team)\b[^.?!\n]{0,40}\bwill (reply|respond|get back|"
    r"answer|be in touch)\b[^.?!\n]{0,30}\bwithin\b",
)

_NOT_INTERESTED = _words(
    # English
    r"\bnot (really |currently |at all |right now )?interested\b",
    r"\bno interest\b",
    r"\bnot (be )?interested\b",
    r"\b(wouldn't|would not|won't|will not|aren't|isn't|am not) (be )?(really |very )?interested\b",
    r"\bnot (the least bit|remotely|particularly|very) interested\b",
    r"\b(isn't|is not|not) (a |the )?(good |great |right )?fit\b",
    r"\bdecided (not to|against)\b",
    r"\A\W*(nope|no|pass|nein|non|nee)\W*\Z|\A\W*(nope|nah)\b",
    r"\b(we're|we are|i'm|i am) all good\b",
    r"\b(handle|do|manage|build|run|keep)\w* (this |it |that |everything )?(internally|in-house|"
    r"in house)\b",
    r"\bnicht in frage\b|\bno es (lo|algo) que\b",
    r"\b(doesn't|does not|don't|do not) (really )?(apply|fit|make sense|suit)\b",
    r"\b(doesn't|does not|don't|do not) (sound|seem|look) like a (good )?(match|fit)\b",
    r"\b(we're|we are) set with\b|\bhold off\b|\bne correspond pas\b|\bestamos cubiertos\b",
    r"\btoo (small|big|early)\b|\bkeine? (kapazität\w*|zeit|budget)\b",
    r"\bsay no\b",
    r"\b(going to|gonna|have to|will|'ll) pass\b(?! (it|this|that|your \w+) (along|on))",
    r"\b(doesn't|does not|don't|do not) (apply|fit|make sense) (to|for) us\b",
    r"\bpas (l'|d')utilité\b|\bno (es algo que )?necesit",
    r"\b(isn't|is not|not) something (we|i)('d| would)? (use|need|want)\b",
    r"\b(another|a different) direction\b|\bnot now\b",
    r"\bkeine verwendung\b|\bkein bedarf\b",
    r"\bpas (donner )?suite\b|\bne (donnerons|donnerai) pas suite\b",
    r"\bno (nos|me) (encaja|cuadra|sirve)\b",
    r"\bstick with (what|our|the)\b",
    r"\b(can't|cannot|can not|won't) consider\b|\bnot something (we|i) can\b",
    r"\b(locked|tied) in(to)?\b.{0,20}\bcontract\b|\bunder contract\b",
    r"\bverzichten\b|\bkein interesse\b",
    r"\b(ça |cela )?ne (nous|m') ?intéresse pas\b|\bn'intéresse pas\b",
    r"\bno (estamos|estoy) buscando\b|\bno buscamos\b",
    r"\b(don't|do not) think (this|it) is for (us|me)\b",
    r"\bnot something (we|i)('re| are|'m| am) (looking|interested)",
    r"\b(don't|do not) have the (bandwidth|budget|time)\b",
    r"\bno,? thanks?\b|\bno thank you\b|\bthanks,? but no\b|\bthanks but no\b",
    r"\b(we're|we are|i'm|i am) (all set|good|covered|happy with)\b",
    r"\bnot (a )?(good )?fit\b",
    r"\bnot (at this time|right now|for us|a priority|something we need|looking)\b",
    r"\b(already|currently) (have|use|using|work with|working with|signed)\b",
    r"\bno (need|budget|plans)\b",
    r"\b(we'll|we will|i'll|i will) pass\b(?! (it|this|that|your \w+) (along|on))",
    r"\bpass on this\b",
    r"\bnot in the market\b",
    r"\bdon'?t need\b|\bdo not need\b|\bno use for\b",
    r"\bnot going to (work|happen)\b",
    r"\bplease (close|don't follow up)\b",
    r"\bdecline\b|\bdeclining\b",
    r"\bnot for (me|us)\b",
    # "interested" answered by a no, in either order
    r"\binterest(ed|ing)?\W{1,3}(no|nope|nah)\b|\b(no|nope|nah)\W{1,3}(not )?interest",
    r"\A\W*(no|nah|nope) (thx|thanks|ty|thank u)\b",
    r"\b(don't|do not|doesn't|does not|dont) have (the |a |any )?(budget|bandwidth|time|need)\b",
    r"\b(happy|satisfied|content) with (our|the|what)\b",
    r"\bnicht (so |sehr |besonders |wirklich )?interessant\b",
    r"\b(ist das|das ist) (leider )?nichts\b",
    r"\bzufrieden\b",
    r"(\bnot|n't|\bnever|\bhardly)\b[^.,;!?\n]{0,25}\binterested\b",
    r"n't for (us|me)\b|\bso,? no\b|\bpretty set\b",
    r"\b(signed|went|going|go) with (a |an )?(competitor|different|another|other)\b",
    r"\b(we're|we are|i'm|i am) (fine|set|sorted)\b(?! (with|on|for) )",
    r"\b(bereits|schon) (eine|einen|ein) (lösung|anbieter|partner|dienstleister|tool)\b",
    r"\bpas (très |vraiment )?intéressant\b",
    # German
    r"\bkein(e|en)? (interesse|bedarf)\b",
    r"\bnicht interessiert\b",
    r"\binteressiert (uns|mich) nicht\b",
    r"\bnein,? danke\b|\bdanke,? nein\b",
    r"\bbrauchen (wir|das) nicht\b|\bbenötigen (wir )?(keine|nicht)\b",
    r"\b(sind|bin) (gut )?versorgt\b",
    r"\b(haben|nutzen) (bereits|schon)\b",
    r"\bderzeit nicht\b|\baktuell nicht\b|\bmomentan nicht\b",
    r"\bkein thema\b",
    r"\bpasst (leider )?nicht\b",
    # French
    r"\bpas intéress[ée]+s?\b",
    r"\bpas d'intérêt\b|\baucun intérêt\b",
    r"\bnon merci\b|\bmerci,? mais non\b",
    r"\bpas (de )?besoin\b|\bn'avons pas besoin\b|\bn'ai pas besoin\b",
    r"\bdéjà (un prestataire|une solution|équipés?|un outil|un partenaire)\b",
    r"\bpas pour (le moment|l'instant|nous)\b",
    r"\bne (nous|me) concerne pas\b",
    r"\bpas (le |la |une )?(priorité|d'actualité)\b",
    # Spanish
    r"\bno (nos|me) interesa\b",
    r"\bno (estamos|estoy) interesad[oa]s?\b",
    r"\bno,? gracias\b",
    r"\bno (lo )?necesit(amos|o)\b",
    r"\bya (tenemos|contamos con|trabajamos con|usamos)\b",
    r"\bpor ahora no\b|\bde momento no\b|\bno es (el momento|prioridad|para nosotros)\b",
    r"\bsin interés\b",
    r"\bno (tenemos|tengo|hay|contamos con|disponemos de) (\w+ )?(presupuesto|tiempo|necesidad)\b"
    r"|\bsin presupuesto\b",
    r"\b(pas|plus) (de |le )?budget\b|\bn'(avons|ai) pas (le |de )?(budget|temps)\b",
    r"\bsans façon\b|\btrès peu pour (moi|nous)\b|\b(passe|passons) (mon|notre) tour\b",
)

_INTERESTED = _words(
    # English
    r"\binterested\b",
    r"\binterest(ed|ing)? in (learning|hearing|seeing|knowing)\b",
    r"\bsounds (good|great|interesting|promising)\b",
    r"\blet'?s (talk|chat|connect|set|schedule|do|book|find|jump)\b",
    r"\b(set up|schedule|book|arrange|hop on|jump on) (a |an )?(quick |short |brief )?"
    r"(call|meeting|demo|chat|time|zoom|meet)\b",
    r"\b(happy|glad|open|keen) to (chat|talk|connect|learn|hear|see|take a look|meet|jump)\b",
    r"\b(send|share) (me|us|over) (more|some|the|a)\b",
    r"\btell me more\b|\blearn more\b|\bmore (info|information|details)\b",
    r"\b(how much|what does it cost|pricing|price list|quote)\b",
    r"\bare you (free|available)\b|\bwhen are you (free|available)\b",
    r"\b(i'm|i am|we're|we are) (free|available) (on|at|next|this|tomorrow)\b",
    r"\b(calendar|calendly) (link|invite)\b|\bsend (me )?(an? )?invite\b",
    r"\bworks for me\b|\bcall me\b|\bgive me a call\b",
    r"\bcurious\b",
    r"\bset (something|a time|time|it) up\b|\blooks? (relevant|interesting|useful)\b",
    r"\bopen to (a |an )?(conversation|call|chat|meeting|discussion)\b|\bwhat times?\b",
    r"\b(take|do|have) a (\d+[- ]?min(ute)?s? |quick |short |brief )?(call|chat|meeting)\b",
    r"\bstop by\b|\bshow (me|us)\b|\bpartante?s? pour\b|\bun échange\b",
    r"\b(peut|pourrait) (m'|nous )intéresser\b",
    r"\bgespräch\b|\bspannend\b|\bpodemos hablar\b|\bqué día\b|\bte va bien\b",
    r"\bintéressant\b|\ben dire plus\b|\bllamar(me|nos)\b|\b(me|nos) (puedes|puede|podéis|"
    r"pueden) llamar\b|\bme gustaría saber\b",
    r"\bwhat('s| is| are) the (cost|price|pricing|rates?|fees?)\b|\bhow (does|do) (it|this|you) "
    r"compare\b|\b(could|might|may) be a (good )?fit\b|\binteressant\b",
    r"\bwould love to\b",
    r"\A\W*((hi|hello|hey|hallo|guten tag|bonjour|hola|buenos días)( herr| frau)?( \w+)?\W*)?"
    r"(yes|yep|yeah|sure|absolutely|definitely|ok|okay|ja|grundsätzlich ja|oui|sí|si)\b",
    r"\bdemo\b|\bpilot\b|\bproposal\b|\bcase stud(y|ies)\b",
    r"\bopen to (learning|hearing|a call|a chat|talking|it)\b",
    r"\b(could|might) work for (us|me)\b|\bwhat we need\b|\bif that works\b",
    r"\A\W*interesting\b",
    r"\bnext steps?\b",
    r"\b(what|how much) (would|does|will) (it|this|that|a [\w -]+) cost\b|\btrial\b",
    r"\bhow does (this|it) work\b|\breferences\b|\bbrochure\b|\bone-pager\b",
    r"\bbooked\b|\bsee you (then|on|next)\b|\bintrigued\b",
    r"\bsend (me|us|over|it)\b|\b(schicken|senden) sie (mir|uns)\b|\benvoyez[- ](moi|nous)\b",
    r"\b(mánda|envía|envíe|mande)(me|nos)\b",
    r"\btime ?slots?\b|\bget started\b|\bi'm in\b(?![ \t]+[\w'])|\bgive me a (ring|call|buzz)\b",
    r"\bwalk (me|us) through\b|\bcuént(a|e)me\b|\bcómo funciona\b|\bwie läuft\b",
    r"\bdiscuter\b|\bappelez[- ]moi\b|\bllám(a|e)me\b|\bi'm listening\b",
    r"\b(could|might|would) be (useful|helpful|interesting|worth)",
    r"\baustauschen\b|\bvideollamada\b|\bnos vemos\b|\bzoom\b|\bteams call\b",
    # A proposed time: a weekday or an hour.
    r"\b(monday|tuesday|wednesday|thursday|friday|montag|dienstag|mittwoch|donnerstag|"
    r"freitag|lundi|mardi|mercredi|jeudi|vendredi|lunes|martes|miércoles|jueves|viernes)\b",
    r"\b\d{1,2}(:\d\d)? ?(am|pm|uhr)\b|\b\d{1,2}h\d{0,2}\b|\ba las \d{1,2}\b",
    # German
    r"\binteressiert\b|\binteresse\b",
    r"\bklingt (gut|spannend|interessant)\b",
    r"\bgerne?\b",
    r"\btermin\b|\btelefonat\b|\b(kurz )?telefonieren\b|\banruf\b|\brufen sie (mich )?an\b",
    r"\bmehr (infos|informationen|details)\b|\bunterlagen\b",
    r"\bwas kostet\b|\bpreise?\b|\bterminvorschl\w*\b",
    r"\bangebot (senden|schicken|machen|erstellen|zukommen)\b",
    r"\b(senden|schicken) sie .{0,20}angebot\b",
    r"\b(passt|geht) (mir|bei mir|uns)\b",
    # French
    r"\bintéress[ée]+s?\b",
    r"\bvolontiers\b",
    r"\brendez-vous\b|\bappel\b|\béchanger\b|\bune démo\b|\bvisio\b",
    r"\bplus d'(informations|infos|détails)\b",
    r"\bquel (est le )?(prix|tarif)\b|\btarifs?\b|\bcombien\b",
    r"\bça m'intéresse\b|\bpourquoi pas\b|\ben savoir plus\b|\bplaquette\b|\bd'accord\b",
    r"\bdisponible\b",
    # Spanish
    r"\bme interesa\b|\bnos interesa\b|\binteresad[oa]s?\b",
    r"\b(una )?llamada\b|\breunión\b|\bhablamos\b|\bhablemos\b|\bagendar\b|\bcita\b",
    r"\bmás (información|info|detalles)\b|\bpropuesta\b",
    r"\bcuánto cuesta\b|\bprecios?\b|\bpresupuesto\b|\bcotización\b",
    r"\bsuena (bien|interesante)\b|\bme parece (bien|interesante)\b",
    r"\bdisponible\b|\bcon gusto\b|\bencantad[oa]\b|\bencantaría\b|\bsaber más\b",
    r"\A\W*(sí|si|ja|oui)\b",
)

# Single words that, in a reply no other rule explains, can only be asked to stop contact (the
# fallback before ``other``): removal and erasure, opt-out, spam, the data-protection laws.
_STOP_HINT = _words(
    r"\bstop\b(?! (by|in|over|at)\b)",
    r"\b(remove|delete|erase|wipe|unsubscribe|opt[- ]?out|spam\w*|harass\w*|gdpr|can-?spam|"
    r"do[- ]not[- ]contact|no more|enough)\b|\bfurther (e-?mails?|messages?|contact)\b",
    r"\bça suffit\b|\brecontact\w*|\bstreichen\b|\bfavor de no\b",
    r"\b(lösch\w*|entfern\w*|austrag\w*|abmeld\w*|unterlass\w*|dsgvo|spam|stopp)\b",
    r"\bnicht (mehr|wieder)\b|\bkeine\b[^.?!\n]{0,30}\bmehr\b",
    r"\bne (m'|me |nous )?(\w+ )?plus\b|\b(supprim\w*|retir(?!ed\b|ement\b|ing\b)\w*|rgpd)\b",
    r"\bno\b[^.?!\n]{0,30}\bmás\b|\bbasta\b|\bno vuelv\w* a\b|\b(elimin\w*|borr\w*|baja)\b",
)

_ADDRESS = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
_REPLY_PREFIX = r"^\s*((re|aw|sv|antw|fwd?|wg|tr)\s*:\s*)+"


# When the rules leave a reply at ``other`` (or read it as a refusal), the model of
# outreach.events.classify_model reads it. Probabilities at or above these choose its label;
# they were set on leave-one-set-out runs that never scored fresh6.txt (docs/events.md).
MODEL_UNSUBSCRIBE = 0.3  # unsure between other and a request to stop: the law decides
MODEL_REFUSAL_UNSUBSCRIBE = 0.5  # a refusal the model reads as a request to stop
MODEL_CONFIDENT = 0.9  # any other label of the model (interested, out_of_office …)
# The model never answers these, except a bounce in mail that the mail system sent
# (mailer-daemon, postmaster): a failed delivery worded in a way the rules do not know.
_NOT_FROM_MODEL = (BOUNCE, OTHER)


def classify(
    *,
    subject: str,
    visible: str,
    text: str = "",
    from_address: str = "",
    auto_submitted: bool = False,
    is_report: bool = False,
    received: date,
    own_addresses: tuple[str, ...] = (),
    model: Model | None = None,
) -> Verdict:
    """The label of one reply and why (pure): the rules, then the model where they leave off.

    The model (``model``, else the one trained on the shipped replies) reads only a reply the
    rules label ``other`` or ``not_interested``, and it can only move a refusal to
    ``unsubscribe_request`` (and ``other`` from the mail system to ``bounce``). So the rules
    keep every unsubscribe, bounce, out-of-office return date and referral address they find.
    """
    verdict = rules(
        subject=subject,
        visible=visible,
        text=text,
        from_address=from_address,
        auto_submitted=auto_submitted,
        is_report=is_report,
        received=received,
        own_addresses=own_addresses,
    )
    if verdict.label not in (OTHER, NOT_INTERESTED):
        return verdict
    body = visible.strip() or text.strip()
    if not classify_model.words(body):
        return verdict
    guess = (model or classify_model.shipped(LABELS)).guess(body)
    unsubscribe = guess.probabilities[UNSUBSCRIBE_REQUEST]
    if verdict.label == NOT_INTERESTED:
        if unsubscribe >= MODEL_REFUSAL_UNSUBSCRIBE:
            why = f"{verdict.reason}; {_model_reason(guess, UNSUBSCRIBE_REQUEST)}"
            return Verdict(UNSUBSCRIBE_REQUEST, why)
        return verdict
    from_mail_system = bool(_BOUNCE_SENDER.match(from_address))
    if from_mail_system and guess.label == BOUNCE and guess.probability >= MODEL_CONFIDENT:
        return Verdict(BOUNCE, f"from the mail system; {_model_reason(guess, BOUNCE)}")
    if unsubscribe >= MODEL_UNSUBSCRIBE:
        return Verdict(UNSUBSCRIBE_REQUEST, _model_reason(guess, UNSUBSCRIBE_REQUEST))
    if guess.label in _NOT_FROM_MODEL or guess.probability < MODEL_CONFIDENT:
        return Verdict(OTHER, f"no rule matched; {_model_reason(guess, guess.label)}")
    why = _model_reason(guess, guess.label)
    if guess.label == OUT_OF_OFFICE:
        subject_core = re.sub(_REPLY_PREFIX, "", subject, flags=re.I)
        returns = return_date(f"{subject_core}\n{body}", received)
        return Verdict(
            OUT_OF_OFFICE, why + (f", back {returns.isoformat()}" if returns else ""), returns
        )
    if guess.label == WRONG_PERSON:
        referral = _referral(body, from_address, own_addresses)
        return Verdict(WRONG_PERSON, why + (f" ({referral})" if referral else ""), None, referral)
    return Verdict(guess.label, why)


def _model_reason(guess: classify_model.Guess, label: str) -> str:
    """ "model: 0.93 not_interested; words: 'not a fit', 'pass'" """
    why = f"model: {guess.probabilities[label]:.2f} {label}"
    if guess.label == label and guess.words:
        why += "; words: " + ", ".join(f"'{w}'" for w in guess.words)
    return why


def rules(
    *,
    subject: str,
    visible: str,
    text: str = "",
    from_address: str = "",
    auto_submitted: bool = False,
    is_report: bool = False,
    received: date,
    own_addresses: tuple[str, ...] = (),
) -> Verdict:
    """The label of one reply by the rules alone, and why (pure)."""
    body = visible.strip() or text.strip()
    subject_core = re.sub(_REPLY_PREFIX, "", subject, flags=re.I)
    both = f"{subject_core}\n{body}"
    if is_report:
        return Verdict(BOUNCE, "a delivery status report")
    if _BOUNCE_SENDER.match(from_address) and (found := _BOUNCE.search(both)):
        return Verdict(BOUNCE, f"from the mail system: “{found.group(0)}”")
    found = _UNSUBSCRIBE.search(both) or _UNSUBSCRIBE_ALONE.search(body) or _REMOVAL.search(body)
    if found:
        return Verdict(UNSUBSCRIBE_REQUEST, f"asks to be removed: “{found.group(0)}”")
    ooo = _OOO.search(both)
    if not ooo and auto_submitted and return_date(both, received):
        ooo = _RETURN_CUE.search(both)  # a machine's notice naming the day someone is back
    if ooo:
        returns = return_date(both, received)
        why = f"absence: “{ooo.group(0)}”"
        if returns:
            why += f", back {returns.isoformat()}"
        if departed := _DEPARTED.search(body):
            referral = _referral(body, from_address, own_addresses)
            why = f"has left: “{departed.group(0)}”" + (f" ({referral})" if referral else "")
            return Verdict(WRONG_PERSON, why, None, referral)
        return Verdict(OUT_OF_OFFICE, why, returns)
    if found := _WRONG_PERSON.search(body):
        referral = _referral(body, from_address, own_addresses)
        why = f"points elsewhere: “{found.group(0)}”"
        return Verdict(WRONG_PERSON, why + (f" ({referral})" if referral else ""), None, referral)
    if auto_submitted:
        return Verdict(AUTO_REPLY, "Auto-Submitted/Precedence header of a machine's answer")
    if found := _AUTO.search(both):
        return Verdict(AUTO_REPLY, f"a machine's answer: “{found.group(0)}”")
    if found := _NOT_INTERESTED.search(body):
        if hint := _STOP_HINT.search(body):
            # A refusal that also says "stop", "remove", "no … más": unsure between a refusal
            # and a request to stop contact, the law decides for the unsubscribe.
            why = f"refuses (“{found.group(0)}”) and asks to stop: “{hint.group(0)}”"
            return Verdict(UNSUBSCRIBE_REQUEST, why)
        return Verdict(NOT_INTERESTED, f"refuses: “{found.group(0)}”")
    if found := _INTERESTED.search(body):
        return Verdict(INTERESTED, f"shows interest: “{found.group(0)}”")
    colleague = _referral(body, from_address, own_addresses)
    if colleague and colleague.rpartition("@")[2] == from_address.rpartition("@")[2]:
        # Nothing else said, and a colleague's address given: a referral.
        return Verdict(WRONG_PERSON, f"names a colleague: {colleague}", None, colleague)
    if found := _STOP_HINT.search(body):
        # Nothing else matched but the words of a request to stop are there: honouring an
        # unsubscribe is the law, so an unsure reading errs on that side.
        return Verdict(UNSUBSCRIBE_REQUEST, f"words of a request to stop: “{found.group(0)}”")
    return Verdict(OTHER, "no rule matched")


def classify_content(
    content: Content,
    *,
    received: date,
    own_addresses: tuple[str, ...] = (),
    model: Model | None = None,
) -> Verdict:
    return classify(
        subject=content.subject,
        visible=content.visible,
        text=content.text,
        from_address=content.from_address,
        auto_submitted=content.auto_submitted,
        is_report=content.is_report,
        received=received,
        own_addresses=own_addresses,
        model=model,
    )


def _referral(body: str, sender: str, own: tuple[str, ...]) -> str:
    skip = {sender.lower(), *(a.lower() for a in own)}
    for found in _ADDRESS.finditer(body):
        address = found.group(0).strip(".").lower()
        if address not in skip:
            return address
    return ""


# --- return dates -----------------------------------------------------------------------

_MONTHS = {
    # English, German, French, Spanish (and their usual abbreviations)
    **dict.fromkeys(["january", "jan", "januar", "jänner", "janvier", "janv", "enero", "ene"], 1),
    **dict.fromkeys(["february", "feb", "februar", "février", "fevrier", "févr", "febrero"], 2),
    **dict.fromkeys(["march", "mar", "märz", "maerz", "mars", "marzo"], 3),
    **dict.fromkeys(["april", "apr", "avril", "avr", "abril", "abr"], 4),
    **dict.fromkeys(["may", "mai", "mayo"], 5),
    **dict.fromkeys(["june", "jun", "juni", "juin", "junio"], 6),
    **dict.fromkeys(["july", "jul", "juli", "juillet", "juil", "julio"], 7),
    **dict.fromkeys(["august", "aug", "août", "aout", "agosto", "ago"], 8),
    **dict.fromkeys(["september", "sep", "sept", "septembre", "septiembre", "setiembre"], 9),
    **dict.fromkeys(["october", "oct", "oktober", "okt", "octobre", "octubre"], 10),
    **dict.fromkeys(["november", "nov", "novembre", "noviembre"], 11),
    **dict.fromkeys(
        ["december", "dec", "dezember", "dez", "décembre", "decembre", "diciembre", "dic"], 12
    ),
}
_WEEKDAYS = {
    **dict.fromkeys(["monday", "montag", "lundi", "lunes"], 0),
    **dict.fromkeys(["tuesday", "dienstag", "mardi", "martes"], 1),
    **dict.fromkeys(["wednesday", "mittwoch", "mercredi", "miércoles", "miercoles"], 2),
    **dict.fromkeys(["thursday", "donnerstag", "jeudi", "jueves"], 3),
    **dict.fromkeys(["friday", "freitag", "vendredi", "viernes"], 4),
}
_MONTH_NAMES = "|".join(sorted((re.escape(m) for m in _MONTHS), key=len, reverse=True))
_DAY = r"(?P<d>[0-3]?\d)(?:st|nd|rd|th|er|\.)?"
_DATE_PATTERNS = [
    re.compile(r"\b(?P<y>20\d\d)-(?P<m>[01]?\d)-(?P<d>[0-3]?\d)\b"),
    re.compile(r"\b(?P<a>[0-3]?\d)[./](?P<b>[01]?\d)(?:[./](?P<y>(20)?\d\d))?\b"),
    re.compile(
        rf"\b{_DAY}\s*(?:de\s+)?(?P<mn>{_MONTH_NAMES})\.?(?:\s+(?:de\s+)?(?P<y>20\d\d))?\b", re.I
    ),
    re.compile(rf"\b(?P<mn>{_MONTH_NAMES})\.?\s+{_DAY}(?:,?\s+(?P<y>20\d\d))?\b", re.I),
    # "Dec 2-3": the end of the range
    re.compile(rf"\b(?P<mn>{_MONTH_NAMES})\.?\s+[0-3]?\d\s*[-–]\s*{_DAY}", re.I),
    # A day of the month alone: "back on the 10th", "vuelvo el viernes 11"
    re.compile(r"\bthe (?P<o>[0-3]?\d)(?:st|nd|rd|th)\b", re.I),
    re.compile(
        rf"\b(?:le|el|am|on) (?P<o>[0-3]?\d)(?:er|\.)?(?![\d./:]|\s*(?:de\s+)?(?:{_MONTH_NAMES})\b)"
        r"(?!\s*(?:am|pm|h\b|uhr))",
        re.I,
    ),
    re.compile(
        rf"\b(?:{'|'.join(_WEEKDAYS)}),?\s+(?:the\s+)?(?P<o>[0-3]?\d)(?:st|nd|rd|th|er|\.)?"
        r"(?![\d./:]|\s*(?:am|pm|h\b|uhr))",
        re.I,
    ),
]
# Words saying the writer is back (strong) or away until (weak) the date that follows; of two
# dates, "until the 3rd … we reopen on the 4th", the one after the stronger cue wins.
_BACK_CUE = re.compile(
    r"\b(back|return\w*|reopen\w*|resum\w*|wieder|zurück|ab|retour|reprendrai|à partir|a partir|"
    r"dès|vuelvo|vuelta|regres\w*|volver\w*|volveré|reincorpor\w*)\b",
    re.I,
)
_UNTIL_CUE = re.compile(r"\b(until|till|through|thru|bis|jusqu\w*|hasta)\b", re.I)
_RETURN_CUE = _words(
    r"until|till|through|back|return|returning",
    r"bis|wieder|zurück|ab",
    r"jusqu|retour|à partir|a partir|reprendrai|dès",
    r"hasta|vuelta|regres|volver|a partir",
)
_WEEKDAY_NAMES = "|".join(sorted(_WEEKDAYS, key=len, reverse=True))
_WEEKDAY_CUE = re.compile(
    r"\b(?:until|till|back|return\w*|bis|ab|wieder|zurück|jusqu'?a?u?|retour|hasta|"
    r"regres\w*|volver\w*|vuelta)\b[^.\n]{0,30}?\b(?P<w>" + _WEEKDAY_NAMES + r")\b",
    re.I,
)


def return_date(text: str, received: date) -> date | None:
    """The day the writer is back, read from an absence notice; None when it gives none.

    Of the dates found, the one after a cue word ("until", "back", "bis", "jusqu'au",
    "hasta" …) wins, else the latest; a date without a year is the next one on or after
    ``received``. Numeric dates are day first (as written in DE, FR, ES), except where the
    first number cannot be a day.
    """
    found: list[tuple[int, date]] = []
    for pattern in _DATE_PATTERNS:
        for match in pattern.finditer(text):
            when = _to_date(match, received)
            if when is None or when < received - timedelta(days=1):
                continue
            if when > received + timedelta(days=400):
                continue
            before = text[max(0, match.start() - 40) : match.start()]
            found.append((_cue_strength(before), when))
    if found:
        best_cue = max(c for c, _ in found)
        return max(d for c, d in found if c == best_cue)
    weekdays = []
    for weekday in _WEEKDAY_CUE.finditer(text):
        wanted = _WEEKDAYS[weekday.group("w").lower()]
        ahead = (wanted - received.weekday()) % 7 or 7
        weekdays.append((_cue_strength(weekday.group(0)), received + timedelta(days=ahead)))
    if weekdays:
        return max(weekdays)[1]
    if _TOMORROW.search(text):
        return received + timedelta(days=1)
    return None


_TOMORROW = re.compile(
    r"\b(back|return\w*|wieder|zurück|retour|de vuelta|vuelvo)\b[^.\n]{0,20}"
    r"\b(tomorrow|morgen|demain|mañana)\b",
    re.I,
)


def _cue_strength(before: str) -> int:
    """2 after a word saying "back", 1 after one saying "until", 0 otherwise; the nearest wins."""
    cues = [(m.end(), 2) for m in _BACK_CUE.finditer(before)]
    cues += [(m.end(), 1) for m in _UNTIL_CUE.finditer(before)]
    return max(cues)[1] if cues else 0


def _to_date(match: re.Match[str], received: date) -> date | None:
    groups = match.groupdict()
    year_text = groups.get("y")
    year = None
    if year_text:
        year = int(year_text) if len(year_text) == 4 else 2000 + int(year_text)
    if groups.get("o"):
        # A day of the month alone: this month's, or next month's when it has passed.
        day, month, year = int(groups["o"]), received.month, received.year
        if day < received.day:
            month, year = (1, year + 1) if month == 12 else (month + 1, year)
        try:
            return date(year, month, day)
        except ValueError:
            return None
    if groups.get("mn"):
        options = [(_MONTHS[groups["mn"].lower()], int(groups["d"]))]
    elif groups.get("a"):
        # 07/12 is 7 December in DE/FR/ES and July 12 in the US: of the readings that make
        # a date, the nearest one after the notice.
        a, b = int(groups["a"]), int(groups["b"])
        options = [(b, a), (a, b)]
    else:
        options = [(int(groups["m"]), int(groups["d"]))]
    dates = []
    for month, day in options:
        try:
            if year is not None:
                dates.append(date(year, month, day))
                continue
            when = date(received.year, month, day)
            # A year-less date in the recent past is past (the start of the absence), not
            # next year's.
            if when < received - timedelta(days=60):
                when = date(received.year + 1, month, day)
            dates.append(when)
        except ValueError:
            continue
    ahead = [d for d in dates if d >= received - timedelta(days=1)]
    if ahead:
        return min(ahead)
    return dates[0] if dates else None
