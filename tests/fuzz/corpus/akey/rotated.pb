
evt_01m92p3br236hgrmf0ce8jm8tqapi_key.rotatedœÀÎ¬ğ»˜ *×
!apikey_01m92p3br1sn1ne4pxxn0hrz0abackendseed"active*client_token.read*client_token.write*api_key.read0 Í¹‰ô»˜@ ¹Î¬ğ»˜HœÀÎ¬ğ»˜R ^”Ú•H‡Ö¢nÀî÷&IÁwïfP-"<áŒm°iï]b ª"ƒª¬_jFˆ,z4˜f){şÇmBŠ+q‰)hœÎœÉğ»˜