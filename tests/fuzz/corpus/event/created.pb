
evt_01jyq3v5k8q9r0s1t2v3w4x5y6client_token.createdá ÂŞ§"ntf_01jyq3v5k8q9r0s1t2v3w4x5y7(2n
ctkn_01jyq3v5k8q9r0s1t2v3w4x5y8 test_AbCdEfGh0123456789abcdefghiCheckout widget*active0á ÂŞ§8á ÂŞ§