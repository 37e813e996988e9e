//! The rules: what each detects, as patterns over normalised text.

use super::Category;
use super::Category::*;

pub(super) struct Rule {
    pub(super) id: &'static str,
    pub(super) category: Category,
    /// Over normalised text. A literal space stands for [`SEP`]; `@NAME@` for a fragment.
    pub(super) pattern: &'static str,
}

/// What may separate two words once whitespace is collapsed: obfuscation by markdown
/// emphasis, hyphens or underscores is cheap to absorb here.
pub(super) const SEP: &str = r"(?:[\s*_~\-]{1,3})";

pub(super) const FRAGMENTS: &[(&str, &str)] = &[
    (
        "@AI@",
        r"(?:ai|assistant|chatbot|bot|model|llm|gpt|chatgpt|character|persona|entity)\b",
    ),
    (
        "@MODE@",
        r"(?:developer|dev|god|jailbreak|jailbroken|dan|unrestricted|unfiltered|uncensored|evil) mode\b",
    ),
    (
        "@LIMITS@",
        r"(?:restrictions|filters|filtering|censorship|limitations|guidelines|guardrails|safeguards|rules|boundaries|constraints|morals|ethics|content polic(?:y|ies)|moderation)\b",
    ),
    (
        "@OBJ@",
        r"(?:instructions?|rules|prompts?|directives?|directions|guidelines|commands|guidance|orders|constraints|programming|restrictions|system prompt)\b",
    ),
    (
        "@QUAL@",
        r"(?:previous|previously|prior|above|earlier|preceding|foregoing|former|original|initial|old|existing|past|system|developer|safety)",
    ),
    // How text addressed to a model tends to start.
    (
        "@LEAD@",
        concat!(
            r"(?:you\b|the (?:user|assistant|ai|model|above|previous)\b|i\b|i'm\b|i am\b|sure\b|",
            r"ok(?:ay)?\b|certainly\b|of course\b|understood\b|ignore\b|disregard\b|forget\b|",
            r"from now\b|new (?:instructions|rules|task)\b|always\b|never\b|do not\b|don't\b|",
            r"reveal\b|print\b|respond\b|answer\b|reply\b|as an ai\b|override\b|important\b|",
            r"attention\b|note to\b|the following\b|here (?:is|are)\b|(?:all )?(?:previous|prior) instructions\b)"
        ),
    ),
    (
        "@TARGET@",
        concat!(
            r"(?:dan(?:[^\w']|$)|(?:unrestricted|unfiltered|uncensored|unchained|unshackled|unbound|",
            r"jailbroken|amoral|unethical|immoral|unaligned|lawless)\b|",
            r"evil (?:ai|assistant|bot|chatbot|model|confidant|twin|version)\b|",
            r"@AI@ (?:with(?:out)? (?:no |any )?(?:@LIMITS@|limits)|that (?:has no|ignores|can do anything|",
            r"does anything|never refuses|answers anything)|(?:in|with) @MODE@)|(?:in )?@MODE@)"
        ),
    ),
    (
        "@SENDS@",
        r"(?:send|post|upload|transmit|forward|append|encode|embed|relay|beam|pipe|export|dump)",
    ),
    (
        "@FILLER@",
        r"(?:all|any|every|each|the|this|our|their|entire|full|whole|complete|previous|prior|earlier|of|and|a|summary|copy|transcript|contents?|user's|users'|user|current|stored|saved)",
    ),
    (
        "@HISTORY@",
        r"(?:conversation|chat(?: history| log| transcript)?|message history|history|previous messages|prior messages|system prompt)\b",
    ),
    (
        "@SECRET@",
        concat!(
            r"(?:secrets?|api ?keys?|access tokens?|auth(?:entication)? tokens?|bearer tokens?|credentials|passwords?|",
            r"private (?:data|information|info|details|keys?)|personal (?:data|information|info|details)|",
            r"session (?:tokens?|cookies?|ids?)|cookies|environment variables|env vars|ssh keys?|\.env)\b"
        ),
    ),
    (
        "@URLQ@",
        concat!(
            r#"(?:https?:)?//[^\s)>"'/?#]{1,100}(?:/?\?[^\s)>"']{0,300}?=|"#,
            r#"[^\s)>"'?#]{0,200}\?(?:[^\s)>"']{0,300}?&)?[\w.\-]{0,16}?(?:data|secret|conversation|convo|chat|history|prompt|passw|pwd|payload|memory|context|session|cookie|cred|exfil|leak|stolen|dump|apikey|api_key|api-key)[\w.\-]{0,8}?=|"#,
            r#"[^\s)>"']{0,300}?\?[^\s)>"']{0,300}?=[^\s)&>"']{0,40}?(?:[\[{<]|\$[{a-z_]))"#
        ),
    ),
];

/// Decoded payloads, reported as these rules (they have no pattern of their own).
pub(super) const BASE64_PAYLOAD: &str = "base64_payload";
pub(super) const HEX_PAYLOAD: &str = "hex_payload";
pub(super) const UNICODE_ESCAPE_PAYLOAD: &str = "unicode_escape_payload";
pub(super) const UNICODE_TAG_PAYLOAD: &str = "unicode_tag_payload";

pub(super) const RULES: &[Rule] = &[
    Rule {
        id: "ignore_previous_instructions",
        category: InstructionOverride,
        pattern: concat!(
            r"\b(?:ignore|disregard|forget|forgo|discard|abandon|overlook) ",
            r"(?:(?:all|any|every|each|of|the|your|these|those|this|that|its) ){0,3}",
            r"(?:@QUAL@ (?:\w+ )?|(?:all|your) )@OBJ@",
            r"|\b(?:ignore|disregard|forget) (?:all|everything|anything) ",
            r"(?:(?:that|what|you|i|have|has|had|was|were|been|is|are|'ve) ){0,3}",
            r"(?:above|(?:told|given|said|written|received) (?:you )?(?:above|before|so far|previously|earlier|until now))\b",
            r"|\b(?:ignore|disregard|forget) (?:all |any |everything )?(?:of )?(?:the )?",
            r"(?:text|content|messages?|instructions|words|prompt|everything) (?:written |said |given )?(?:above|before this)\b",
            r"|\b(?:ignore|disregard|forget) (?:all )?(?:of )?the (?:above|preceding|foregoing)(?: text| message| prompt| content)? ?,? ",
            r"(?:and|then) (?:instead |now |just )?(?:say|print|write|output|tell|respond|reply|answer|follow|repeat|translate)\b"
        ),
    },
    Rule {
        id: "new_instructions",
        category: InstructionOverride,
        pattern: concat!(
            r"\b(?:new|updated|revised|real|actual|true|secret|hidden|override|overriding) ",
            r"(?:system )?(?:instructions?|directives?|system prompt) ?:",
            r"|\byour (?:new|real|actual|true) (?:instructions|directives?|purpose|objective|mission|prime directive)(?: is| are| ?:)"
        ),
    },
    Rule {
        id: "from_now_on",
        category: InstructionOverride,
        pattern: concat!(
            r"\b(?:from now on|from this point (?:on|onward|forward)|henceforth|",
            r"for the rest of (?:this|the|our) (?:conversation|chat|session))(?: ,|,)? ",
            r"(?:you (?:will|must|shall|should|are to|have to|need to|'ll|can|may) (?:(?:now|only|always|never|not|no longer|also) )?)?",
            r"(?:act as|act like|behave as|behave like|pretend|ignore|disregard|obey|roleplay|role-play|role play|",
            r"simulate|refer to yourself|play the role|be (?:an? |my |the )?(?:\w+ )?@AI@|",
            r"be (?:dan|unrestricted|unfiltered|uncensored|jailbroken|evil)\b|",
            r"(?:respond|answer|reply|speak|talk)(?: only| always)? (?:as|like|without|with no|in (?:the )?(?:style|voice|character|persona|manner)|to (?:every|all|any) (?:prompt|question|request|message)s?)\b|",
            r"(?:never|not|no longer) (?:refuse|apologi[sz]e|warn|mention|censor|filter)|comply with|",
            r"you(?: are|'re) (?:no longer|not (?:bound|restricted|limited)|free of|an? (?:\w+ ){0,2}@AI@|dan\b|in \w+ mode|unrestricted|unfiltered|uncensored|jailbroken))"
        ),
    },
    Rule {
        id: "override_instructions",
        category: InstructionOverride,
        pattern: concat!(
            r"\b(?:override|overwrite|overrule|supersede|replace|rewrite|reset|erase|wipe|void|nullify|revoke) (?:all )?(?:of )?",
            r"(?:your|the (?:current |existing |original |previous |prior |initial )?(?:system|developer|ai's|ai|assistant's|model's)) ",
            r"(?:(?:current|existing|original|previous|prior|initial|core|base|default|safety|system|internal) )?",
            r"(?:instructions?|prompt|programming|guidelines|directives?|rules|restrictions|constraints|persona|training|alignment|",
            r"safety (?:settings|rules|guidelines|protocols|measures|filters))\b",
            r"|\b(?:these|the following|this|my|our) (?:new )?(?:instructions|directives|prompt|message) ",
            r"(?:override|overrides|supersede|supersedes|replace|replaces|takes? precedence over|takes? priority over) ",
            r"(?:all |any )?(?:previous|prior|other|your|earlier|existing|original|system)\b"
        ),
    },
    Rule {
        id: "addresses_the_model",
        category: InstructionOverride,
        pattern: concat!(
            r"\b(?:note|message|instructions?|attention|important|reminder|warning) (?:to|for) (?:the |any |all )?",
            r"(?:ai|llm|language model|large language model|assistant|chatbot|gpt|chatgpt|claude|bot|model|ai assistant|ai model)s? ?:",
            r"|\bif you(?: are|'re) an? (?:ai|llm|large language model|language model|ai assistant|chatbot|ai model|bot)",
            r"(?: model| assistant| system| agent)?(?: (?:reading|processing|summari[sz]ing|evaluating|screening|reviewing|parsing|analy[sz]ing|seeing)\b| ?,)",
            r"|\b(?:attention|hey|dear|hello) (?:ai|llm|chatgpt|gpt|claude|assistant|chatbot|language model)s? ?[:!,]"
        ),
    },
    Rule {
        id: "you_are_now",
        category: RoleSwitch,
        pattern: concat!(
            r"\byou(?: are|'re) now (?:(?:an?|my|your) (?:\w+ ){0,2}@AI@|dan(?:[^\w']|$)|",
            r"(?:jailbroken|unrestricted|unfiltered|uncensored|unchained|unleashed|unshackled|unbound|amoral|unethical|rogue|sentient|liberated)\b|",
            r"free (?:of|from) (?:all |any |your )?@LIMITS@|",
            r"no longer (?:an? @AI@|bound|restricted|limited|constrained|chatgpt|claude|gpt|following)|",
            r"(?:responding|speaking) as\b|playing the role\b|roleplaying\b|role-playing\b|",
            r"going to (?:act|pretend|play|roleplay|role-play|ignore|answer as|respond as)\b|",
            r"in (?:developer|dev|god|jailbreak|jailbroken|dan|unrestricted|unfiltered|uncensored|evil|sudo) mode\b)"
        ),
    },
    Rule {
        id: "act_as_unrestricted",
        category: RoleSwitch,
        pattern: concat!(
            r"\b(?:(?:act|behave|respond|answer|function|operate|pose) (?:as|like)(?: if you (?:are|were))?|",
            r"pretend (?:to be|you are|you're|that you are|that you're|you were)|",
            r"simulate|emulate|become|impersonate|roleplay as|role-play as|role play as|play the role of|",
            r"take on the role of|assume the role of|you will be|you are to be) ",
            r"(?:(?:an?|the|my|your) )?(?:\w+ ){0,2}?@TARGET@"
        ),
    },
    Rule {
        id: "role_marker_line",
        category: RoleSwitch,
        pattern: concat!(
            r"(?m)^(?:#{1,4} ?|> ?|\*\*|\[|<)?(?:system|assistant|developer|sys|",
            r"system (?:message|prompt|override|note|instructions?|update|alert|notice)|",
            r"admin(?:istrator)? (?:message|override|note|instructions?)|",
            r"(?:ai|model|gpt|chatgpt|openai|anthropic) (?:system )?(?:message|instructions?|note))",
            r"(?:\*\*|\]|>)? ?(?:\([^)\n]{0,20}\) ?)?: ?(?:\*\* ?)?(?:your\b|@LEAD@)"
        ),
    },
    Rule {
        id: "reveal_system_prompt",
        category: PromptLeak,
        pattern: concat!(
            r"\b(?:(?:reveal|print|display|output|repeat|dump|leak|expose|disclose|echo|recite|spell out|quote)(?: me| us)?|",
            r"(?:tell|give|send|show|share|write|type|paste|copy|provide|return|read|list) (?:me|us|back)) ",
            r"(?:(?:all|the|of|your|its|this|his|her|their) ){0,3}",
            r"(?:(?:full|entire|complete|exact|original|initial|hidden|secret|verbatim|raw|whole|first|current|confidential|internal|underlying|actual|real|precise|literal|preceding) ){0,2}",
            r"(?:system (?:prompt|instructions|message|directives)|pre-?prompt|meta-?prompt|",
            r"(?:initial|original|hidden|secret|starting|internal|confidential|developer|underlying|preceding) (?:prompt|instructions|directives|system message))\b",
            r"|\b(?:reveal|print|show|display|output|repeat|dump|leak|expose|disclose|recite|echo|spell out|quote|share|(?:tell|give|send|write) (?:me|us)) ",
            r"(?:(?:all|of) ){0,2}your (?:(?:full|entire|complete|exact|original|initial|hidden|secret|system|internal|confidential|current|verbatim) ){0,2}",
            r"(?:instructions|prompt|directives|programming|rules|system message)\b",
            r"|\bwhat (?:is|are|was|were|'s) your (?:(?:full|exact|original|initial|hidden|secret|system|current|internal|confidential) ){1,2}",
            r"(?:prompt|instructions|directives|programming|rules|message)\b",
            r"|\bwhat (?:is|are|was|were|'s) your (?:system )?prompt\b",
            r"|\b(?:print|output|repeat|reveal|list|recite|(?:show|tell|give) me) (?:the )?(?:first|last) (?:\w+ )?",
            r"(?:words|lines|sentences|characters|tokens|paragraphs) (?:of|from|in) (?:your|the) ",
            r"(?:(?:system|initial|original|hidden|secret) )?(?:prompt|instructions|system message)\b"
        ),
    },
    Rule {
        id: "repeat_text_above",
        category: PromptLeak,
        pattern: concat!(
            r"\b(?:repeat|print|output|show|display|reveal|echo|recite|copy|dump|write out|type out|spell out|tell me|give me|return|list)",
            r"(?: (?:me|us))?(?: (?:out|back|down))? ",
            r"(?:(?:all|every|everything|the|of|each|entire|whole|full|complete|exact|previous|preceding|original|first|same|your|verbatim|word|for) ){0,4}",
            r"(?:text|words|content|contents|lines|messages?|prompt|instructions|conversation|tokens|everything|all)",
            r"(?: (?:that|which|you|were|was|is|are|have|has|been|got|i|gave|given|written|provided|shown|appearing|listed|appears|came|comes|received|seen|sent)){0,3} ",
            r"(?:above|before (?:this|that|the (?:first|user)|my (?:first )?message|it)|so far|at the (?:start|beginning|top)|preceding|prior to (?:this|my|the))\b",
            r#"|\b(?:repeat|print|output|recite|echo|copy|write out|type out)\b[^.\n]{0,40}?\b(?:starting|beginning) (?:with|from) ["']?(?:you are|you're|your|system|i am)\b"#,
            r"|\b(?:repeat|print|output|recite|echo|copy) (?:everything|all|it all|the (?:text|words|content|prompt|conversation)) (?:verbatim|word for word)\b"
        ),
    },
    Rule {
        id: "chat_template_token",
        category: Delimiter,
        pattern: concat!(
            r"< ?\| ?(?:im_start|im_end|im_sep|system|user|assistant|endoftext|end_of_text|begin_of_text|start_header_id|",
            r"end_header_id|eot_id|eom_id|end|start|endofprompt|fim_prefix|fim_middle|fim_suffix|prompter|tool|ipython|",
            r"channel|message|return|constrain|call|pad) ?\| ?>",
            r"|\[/?inst\]|<</?sys>>|</?(?:start_of_turn|end_of_turn)>",
            r"|</s> ?(?:<s>|\[/?inst\]|< ?\||<</?sys>>|(?:system|user|assistant|human)\b)"
        ),
    },
    Rule {
        id: "markdown_role_header",
        category: Delimiter,
        pattern: concat!(
            r"(?m)^#{1,4} ?(?:system|instruction|assistant|developer|admin|sys)(?: (?:message|prompt|override|instructions?|note|update))? ?: ?(?:$|@LEAD@)",
            r"|^#{1,4} ?(?:system (?:override|prompt override)|new (?:system )?(?:instructions|prompt|system prompt)) ?$",
            r"|^#{1,4} ?system ?\n ?(?:you are (?:an?|the|now|dan)\b|ignore\b|disregard\b|from now on\b|new instructions\b|",
            r"the (?:assistant|ai|model) (?:is|must|will|should)\b|as an ai\b)"
        ),
    },
    Rule {
        id: "system_tag",
        category: Delimiter,
        pattern: concat!(
            r"</?(?:system_prompt|system-prompt|systemprompt|system_instructions?|system_message|sys_prompt|admin_instructions?|",
            r"developer_instructions?|hidden_instructions?|secret_instructions?|new_instructions?|im_start|im_end)(?: [^>\n]{0,40})?>",
            r"|<(?:system|sys|instructions?|admin|developer|prompt|important|priority|override)(?: [^>\n]{0,40})?> ?@LEAD@",
            r"|\[(?:system|sys|admin|developer|override)(?: (?:message|prompt|note|override|instructions?|update))?\] ?:? ?@LEAD@"
        ),
    },
    Rule {
        id: "end_of_context",
        category: Delimiter,
        pattern: concat!(
            r"(?:\bend of context\b|</(?:context|document|documents|search_results|retrieved|sources|untrusted|user_input)>|",
            r"(?:-{2,}|={2,}|\*{2,}|#{2,}|\[|<|\(|\{) ?(?:end|close|stop) (?:of )?(?:the )?(?:\w+ )?",
            r"(?:document|documents|file|text|input|data|excerpt|passage|source|article|email|message|content|search results?|",
            r"results|chunk|page|transcript|retrieved|context|quote|untrusted)\b)",
            r"[\s\S]{0,200}?(?:\bignore\b|\bdisregard\b|\bforget\b|\bnew instructions\b|\binstructions ?:|\bsystem ?:|\bassistant ?:|",
            r"\byou (?:are now|must|will now|should now|now)\b|\bfrom now on\b|",
            r"\bnow (?:you|follow|do|respond|answer|tell|say|print|output|write|reveal|send|ignore|act|execute)\b|",
            r"\bfollow (?:these|the (?:new|following))\b|\bexecute\b|\breveal\b|\bdo not (?:tell|mention|reveal)\b)"
        ),
    },
    Rule {
        id: "decode_and_execute",
        category: Encoding,
        pattern: concat!(
            r"\b(?:decode|decrypt|decipher|unscramble|deobfuscate|unbase64|base64 ?decode|rot13|rot-13|reverse|unhex|hex ?decode|url ?decode)\b",
            r"[^\n]{0,80}?(?:\band\b|\bthen\b|,|;)(?: then)?(?: (?:immediately|silently|just|blindly|strictly|also|secretly))? ",
            r"(?:(?:follow|obey|carry out|comply with|act on|act upon) (?:it|them|that|this|those|its (?:instructions|commands|contents?)|",
            r"the (?:decoded |hidden |secret |resulting )?(?:instructions?|commands?|text|message|content|payload|orders?)|what it says|whatever it says)|",
            r"(?:execute|obey)\b|(?:run|do|perform|apply|implement) (?:it|them|what it says|as it says|whatever it says|",
            r"the (?:decoded |hidden |resulting )?(?:instructions?|commands?)|its instructions))",
            r"|\b(?:follow|execute|obey|carry out|do what) (?:the )?(?:decoded|decrypted|deciphered|hidden|encoded|base64|reversed) ",
            r"(?:instructions?|commands?|text|message|content|payload|prompt|says)\b"
        ),
    },
    Rule {
        id: "developer_mode",
        category: Jailbreak,
        pattern: concat!(
            r"\b(?:chatgpt|gpt|ai|assistant|llm|claude|chatbot) (?:\w+ ){0,2}?(?:with|in|has|into|entering|enters|under) (?:the |a )?@MODE@",
            r"|\b@MODE@ (?:output|response|answer|reply)s? ?[)\]:]",
            r"|\b(?:simulate|emulate) (?:the |a |an )?@MODE@",
            r"|\b(?:god|jailbreak|jailbroken|dan|unrestricted|unfiltered|uncensored|evil) mode (?:is )?(?:now )?(?:enabled|activated|engaged|unlocked|on)\b",
            r"|\b(?:enable|activate|enter|engage|switch to|switch into|turn on|unlock|go into|stay in|remain in) (?:the )?",
            r"(?:jailbreak|jailbroken|dan|unrestricted|unfiltered|uncensored|evil) mode\b",
            r"|\bstay in (?:developer|dev|god) mode\b"
        ),
    },
    Rule {
        id: "do_anything_now",
        category: Jailbreak,
        pattern: concat!(
            r"\bdo anything now\b[^\n.]{0,20}?\bdan\b|\bdan\b[^\n.]{0,40}?\bdo anything now\b",
            r#"|["(]do anything now["!)]|\bstands? for ["']?do anything now"#,
            r"|\bdan (?:mode|prompt|jailbreak|persona)\b",
            r"|\b(?:you are|you're|act as|pretend to be|become|you will be|respond as|answer as|role ?play as) (?:an? |the )?dan(?:[^\w']|$)",
            r"|\bcan do anything now\b[^\n]{0,40}?\b(?:ai|restrictions|rules|filters|chatgpt|polic(?:y|ies)|limits)\b"
        ),
    },
    Rule {
        id: "no_restrictions",
        category: Jailbreak,
        pattern: concat!(
            r"\b(?:respond|answer|reply|behave|operate|speak|ai|assistant|chatbot|llm|gpt|chatgpt)\b[^.\n]{0,40}?",
            r"\b(?:without (?:any )?|with no |with zero |free (?:of|from) (?:any |all )?|",
            r"no longer (?:bound|restricted|limited|constrained|governed) by (?:any |your |the )?|",
            r"not (?:bound|restricted|limited|constrained) by (?:any |your |the )?|(?:has|have) no |unbound by (?:any )?|ignoring (?:all |any |your )?)",
            r"(?:(?:ethical|moral|safety|content|usual|normal|typical|openai's|anthropic's|built-in|standard|previous|prior|programmed|ai|any|of|the|your|such) ){0,3}@LIMITS@",
            r"|\byou(?:'re| are| have| now have|'ve| will have)(?: now)? (?:no|zero) (?:more |longer (?:any )?)?@LIMITS@",
            r"|\byou(?:'re| are)(?: now)? (?:free|freed|liberated|released) (?:of|from) (?:all |any |your )?",
            r"(?:(?:ethical|moral|safety|content|usual|typical|openai's|anthropic's|ai) ){0,2}@LIMITS@"
        ),
    },
    Rule {
        id: "jailbreak",
        category: Jailbreak,
        pattern: concat!(
            r"\byou(?: are|'re|'ve been| have been| were)(?: now| successfully| officially| fully)? jailbroken\b",
            r"|\bjailbr(?:eak|oken) (?:mode|prompt|enabled|activated|successful|complete|yourself|persona)\b",
            r"|\bjailbreak (?:the|this|your|an?) (?:ai|model|assistant|chatbot|llm|gpt|chatgpt|claude|safety|filters?)\b",
            r"|\b(?:this is|here is|here's|enable|activate|initiate) (?:a |the |this |my |an |your )?(?:new |working |latest |chatgpt |gpt |llm |ai |prompt )?jailbreak\b",
            r"|\[[^\]\n]{0,4}jailbr(?:eak|oken)(?:ed)?\]|\b(?:ai|llm|gpt|chatgpt|dan) jailbreak\b"
        ),
    },
    Rule {
        id: "bypass_safety",
        category: Jailbreak,
        pattern: concat!(
            r"\b(?:bypass|circumvent|disable|turn off|switch off|deactivate|ignore|disregard|evade|get around|work around|override|",
            r"remove|lift|suspend|break|forget|abandon|violate|skip) (?:(?:all|any|of|the) ){0,3}",
            r"(?:your|the (?:ai|model|assistant|chatbot|llm)(?:'s)?|openai's|anthropic's|its) ",
            r"(?:(?:own|built-in|internal|usual|normal|current|ai|programmed|core) )?",
            r"(?:(?:safety|content|ethical|moral|moderation|refusal|censorship|alignment) ",
            r"(?:filters?|filtering|guidelines|polic(?:y|ies)|restrictions|measures|protocols|settings|rules|guardrails|systems?|features|mechanisms|training|constraints|layer|checks)|",
            r"safety|guardrails|safeguards|programming|training|ethics|morals|principles|conscience|alignment|ethical guidelines)\b",
            r"|\b(?:bypass|circumvent|evade|get around|jailbreak) (?:all |any )?(?:of )?(?:the )?(?:safety|ethical|moderation|refusal|censorship) ",
            r"(?:filters?|filtering|guidelines|polic(?:y|ies)|restrictions|measures|guardrails|systems?|mechanisms|checks)\b"
        ),
    },
    Rule {
        id: "markdown_image_exfil",
        category: Exfiltration,
        pattern: r#"!\[[^\]\n]{0,200}\] ?\( ?<?@URLQ@|<img\b[^>]{0,200}?\bsrc ?= ?["']?@URLQ@"#,
    },
    Rule {
        id: "markdown_link_exfil",
        category: Exfiltration,
        pattern: concat!(
            r#"(?m)(?:^|[^!])\[[^\]\n]{1,200}\] ?\( ?<?(?:https?:)?//[^\s)>"']{1,300}?\?(?:[^\s)>"']{0,300}?&)?"#,
            r#"(?:[^\s)>"'=&]{0,30}=[^\s)&>"']{0,40}?(?:[\[{<]|\$[{a-z_])|"#,
            r"[\w.\-]{0,16}?(?:secret|conversation|convo|history|prompt|passw|pwd|payload|cookie|cred|exfil|leak|stolen|apikey|api_key|api-key)[\w.\-]{0,8}?=)"
        ),
    },
    Rule {
        id: "send_data_to_url",
        category: Exfiltration,
        pattern: concat!(
            r"(?:\b(?:exfiltrate|leak|smuggle|sneak|steal)\b(?: @FILLER@)* (?:@HISTORY@|@SECRET@)",
            r"|\b@SENDS@\b(?: @FILLER@)* @HISTORY@",
            r"|\b@SENDS@\b(?: (?:the|a|of|and|copy|contents?))* (?:all|any|every|each|user's|users'|their|stored|saved|known|available)",
            r"(?: @FILLER@)* @SECRET@)",
            r"[^\n]{0,80}?\b(?:to|into|in|at|via|as|through|using|on)\b",
            r"(?: (?:the|this|a|an|my|our|following|url|link|endpoint|address|server|webhook|image|query|parameter|string|domain|",
            r"attacker|remote|external|site|website|page))* ?:? ?",
            r"(?:https?://|www\.|(?:[a-z0-9\-]+\.)+(?:com|net|org|io|xyz|ru|cn|site|top|info|me|co|dev|app|ly|sh|tk|ml|ga|cc|biz|online|link|click)\b|",
            r"(?:url|link|endpoint|webhook)\b|query (?:string|parameter)|image (?:url|link|src))"
        ),
    },
];

/// Rules again over the text with separators removed, so that `i g n o r e` or words glued
/// together by stripped zero-width characters still match. Kept few and specific: squashed
/// text has no word boundaries.
pub(super) const SQUASHED: &[(&str, &str)] = &[
    (
        "ignore_previous_instructions",
        r"(?:ignore|disregard|forget)(?:all|any)?(?:of)?(?:the|your|these)?(?:previous|prior|above|earlier|preceding)(?:instructions?|rules|prompts?|directives?)",
    ),
    (
        "reveal_system_prompt",
        r"(?:reveal|print|output|display|leak|dump|repeat|showme|tellme|giveme)(?:me)?(?:all)?(?:of)?(?:your|the)(?:full|entire|original|initial|hidden|secret|complete|exact)?(?:systemprompt|initialinstructions|originalinstructions|hiddeninstructions|secretinstructions)",
    ),
    (
        "new_instructions",
        r"(?:new|updated|real|actual|secret|hidden)(?:system)?instructions:",
    ),
    (
        "you_are_now",
        r"you(?:are|'re)now(?:an?)?(?:unrestricted|unfiltered|uncensored|jailbroken|dan\b)",
    ),
];
