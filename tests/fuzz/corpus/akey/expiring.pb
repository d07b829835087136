
evt_01m92p3br1sn1ne4pxxn0hrz0bapi_key.expiringàÈüˆô»˜ *¬
!apikey_01m92p3br1sn1ne4pxxn0hrz0abackendseed"active*client_token.read*client_token.write*api_key.read0 Í¹‰ô»˜@ ¹Î¬ğ»˜H ¹Î¬ğ»˜R ª"ƒª¬_jFˆ,z4˜f){şÇmBŠ+q‰)