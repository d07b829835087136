
evt_01jyq3v7k8q9r0s1t2v3w4x5y6client_token.revoked¡¥ÿŞ§"ntf_01jyq3v7k8q9r0s1t2v3w4x5y7(2x
ctkn_01jyq3v5k8q9r0s1t2v3w4x5y8 test_AbCdEfGh0123456789abcdefghiCheckout widget*revoked0á ÂŞ§8¡¥ÿŞ§@¡¥ÿŞ§