
evt_01m92p3br236hgrmf0ce8jm8trapi_key.usedÍÀÎ¬ğ»˜*,
!apikey_01m92p3br1sn1ne4pxxn0hrz0a8ÍÀÎ¬ğ»˜