"""The word lists of the reply rules (outreach.events.classify), as data: one compiled pattern
per label, in English, German, French and Spanish, matched on the lower-cased visible reply with
accents kept. The order the rules try them in, and what each match decides, is classify's.
"""

from __future__ import annotations

import re


def any_of(*patterns: str) -> re.Pattern[str]:
    """One case-blind pattern matching any of ``patterns``."""
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


BOUNCE_SENDER = re.compile(
    r"^(mailer[-_]?daemon|postmaster|mail-daemon|mdaemon|mail[-_.]?delivery\w*)@", re.I
)
# What a mail system (or a gateway in front of the recipient) writes when it gave up: the
# failed delivery said in words, in four languages, or an SMTP status of a refusal.
BOUNCE = any_of(
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

UNSUBSCRIBE = any_of(
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
REMOVAL = re.compile(
    rf"\b({_REMOVE_VERBS})\b[^.?!\n]{{0,50}}\b({_REMOVE_OBJECTS})\b"
    rf"|\b({_REMOVE_OBJECTS})\b[^.?!\n]{{0,30}}\b({_REMOVE_VERBS})\b",
    re.IGNORECASE,
)

# A reply that is nothing but the word.
_POLITE = r"please|pls|plz|bitte|svp|s'il vous plaît|merci|por favor|thanks|danke|gracias"
UNSUBSCRIBE_ALONE = re.compile(
    rf"\A\W*(({_POLITE})\W*)?(remove|stop|unsubscribe|unsub|remove me|stop it|no more|abmelden|"
    rf"stopp|baja|désinscription|desuscribir)\W*(({_POLITE})\W*)?\Z",
    re.I,
)

OOO = any_of(
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

WRONG_PERSON = any_of(
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
DEPARTED = any_of(
    r"\bno longer (with|at|works|working|employed)\b",
    r"\b(has )?left (the company|\w+ in)\b",
    r"\bnicht mehr (im unternehmen|bei|für)\b",
    r"\bne fait plus partie\b|\ba quitté\b|\b(i|he|she|has|have) retired\b",
    r"\bya no (trabaja|está) en\b",
)

AUTO = any_of(
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

NOT_INTERESTED = any_of(
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

INTERESTED = any_of(
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
STOP_HINT = any_of(
    r"\bstop\b(?! (by|in|over|at)\b)",
    r"\b(remove|delete|erase|wipe|unsubscribe|opt[- ]?out|spam\w*|harass\w*|gdpr|can-?spam|"
    r"do[- ]not[- ]contact|no more|enough)\b|\bfurther (e-?mails?|messages?|contact)\b",
    r"\bça suffit\b|\brecontact\w*|\bstreichen\b|\bfavor de no\b",
    r"\b(lösch\w*|entfern\w*|austrag\w*|abmeld\w*|unterlass\w*|dsgvo|spam|stopp)\b",
    r"\bnicht (mehr|wieder)\b|\bkeine\b[^.?!\n]{0,30}\bmehr\b",
    r"\bne (m'|me |nous )?(\w+ )?plus\b|\b(supprim\w*|retir(?!ed\b|ement\b|ing\b)\w*|rgpd)\b",
    r"\bno\b[^.?!\n]{0,30}\bmás\b|\bbasta\b|\bno vuelv\w* a\b|\b(elimin\w*|borr\w*|baja)\b",
)

ADDRESS = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
REPLY_PREFIX = r"^\s*((re|aw|sv|antw|fwd?|wg|tr)\s*:\s*)+"
